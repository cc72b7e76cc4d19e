/*
 * The classic vmcompute.dll API as this simulator exports it: the types,
 * the notification numbers and the HRESULTs of HCS.md sections 1-4.
 *
 * Strings are UTF-16LE code units on both builds (wchar16), never Linux's
 * 32-bit wchar_t. On Windows the exports use WINAPI; on x64 that is the one
 * native convention, so Linux needs no attribute either.
 */
#ifndef HCS_SIM_HCS_H
#define HCS_SIM_HCS_H

#include <stdint.h>

typedef uint16_t wchar16;
typedef int32_t hresult;

#ifdef _WIN32
#define HCS_EXPORT __declspec(dllexport)
#define HCS_CALL __stdcall
#else
#define HCS_EXPORT __attribute__((visibility("default")))
#define HCS_CALL
#endif

/* HCS_NOTIFICATION_CALLBACK (HCS.md 3.1). */
typedef void(HCS_CALL *hcs_notification_callback)(uint32_t type, void *context,
                                                   hresult status,
                                                   const wchar16 *data);

/* HCS_PROCESS_INFORMATION (HCS.md 2.1): 32 bytes on x64. */
typedef struct {
    uint32_t process_id;
    uint32_t reserved;
    void *std_input;
    void *std_output;
    void *std_error;
} hcs_process_information;

/* Notification types (HCS.md 3.3). */
enum {
    NOTIFY_SYSTEM_EXITED = 0x00000001,
    NOTIFY_CREATE_COMPLETED = 0x00000002,
    NOTIFY_START_COMPLETED = 0x00000003,
    NOTIFY_PAUSE_COMPLETED = 0x00000004,
    NOTIFY_RESUME_COMPLETED = 0x00000005,
    NOTIFY_PROCESS_EXITED = 0x00010000,
    NOTIFY_SERVICE_DISCONNECT = 0x01000000,
};

/* HRESULTs (HCS.md 4). Written as unsigned literals, compared as int32. */
#define HR(x) ((hresult)(uint32_t)(x))
#define S_OK_ HR(0)
#define E_FAIL_ HR(0x80004005)
#define E_INVALIDARG_ HR(0x80070057)
#define E_POINTER_ HR(0x80004003)
#define E_OUTOFMEMORY_ HR(0x8007000E)
#define HR_FILE_NOT_FOUND HR(0x80070002)
#define HR_INVALID_HANDLE HR(0x80070006)
#define HR_SHARING_VIOLATION HR(0x80070020)
#define HR_NOT_SUPPORTED HR(0x80070032)
#define HR_NOT_FOUND HR(0x80070490)
#define HR_RPC_SERVER_UNAVAILABLE HR(0x800706BA)
#define VMCOMPUTE_TERMINATED_DURING_START HR(0xC0370100)
#define VMCOMPUTE_OPERATION_PENDING HR(0xC0370103)
#define VMCOMPUTE_INVALID_STATE HR(0xC0370105)
#define VMCOMPUTE_UNEXPECTED_EXIT HR(0xC0370106)
#define VMCOMPUTE_TIMEOUT HR(0xC0370109)
#define VMCOMPUTE_CONNECTION_CLOSED HR(0xC037010A)
#define VMCOMPUTE_INVALID_JSON HR(0xC037010D)
#define VMCOMPUTE_SYSTEM_NOT_FOUND HR(0xC037010E)
#define VMCOMPUTE_SYSTEM_ALREADY_EXISTS HR(0xC037010F)
#define VMCOMPUTE_SYSTEM_ALREADY_STOPPED HR(0xC0370110)
#define HCS_E_CALLBACK_ALREADY_SET HR(0x80370119)
#define HCS_E_PROCESS_ALREADY_STOPPED HR(0x8037011F)

#endif
