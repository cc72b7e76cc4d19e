/*
 * ctrl-event.exe PID c|break
 *
 * Delivers a console control event (CTRL_C_EVENT or CTRL_BREAK_EVENT) to
 * the Windows process PID the way Windows' console host does: it starts a
 * thread in that process at kernelbase!CtrlRoutine with the event as its
 * argument, and CtrlRoutine calls the handlers the process registered with
 * SetConsoleCtrlHandler (Deno's, for SIGINT and SIGBREAK listeners).
 *
 * Why not GenerateConsoleCtrlEvent: it needs a console shared with the
 * target, which processes Wine starts from pipes do not have, and with one
 * (under a pty) Wine 10 reports success for CTRL_BREAK_EVENT but delivers
 * nothing. Wine does turn SIGINT into CTRL_C_EVENT by itself, which the
 * tests use too; CTRL_BREAK has no such path.
 *
 * Exit status: 0 once the event's thread has run (whatever the process
 * then did: the tests watch that), 1 on failure, 2 on bad usage.
 * Built by tests/wine/setup.sh with mingw-w64.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <psapi.h>
#include <stdio.h>
#include <wchar.h>

static int fail(const char *what, DWORD pid) {
    fprintf(stderr, "ctrl-event: %s for process %lu failed (error %lu)\n",
            what, (unsigned long)pid, (unsigned long)GetLastError());
    return 1;
}

int wmain(int argc, wchar_t **argv) {
    if (argc != 3 || (wcscmp(argv[2], L"c") && wcscmp(argv[2], L"break"))) {
        fprintf(stderr, "usage: ctrl-event.exe PID c|break\n");
        return 2;
    }
    DWORD pid = wcstoul(argv[1], NULL, 10);
    DWORD event = wcscmp(argv[2], L"break") == 0 ? CTRL_BREAK_EVENT
                                                  : CTRL_C_EVENT;

    HMODULE ours = GetModuleHandleW(L"kernelbase.dll");
    FARPROC routine = ours ? GetProcAddress(ours, "CtrlRoutine") : NULL;
    if (!routine) return fail("finding kernelbase!CtrlRoutine", pid);

    HANDLE process = OpenProcess(PROCESS_CREATE_THREAD | PROCESS_QUERY_INFORMATION |
                                     PROCESS_VM_OPERATION | PROCESS_VM_READ |
                                     PROCESS_VM_WRITE,
                                 FALSE, pid);
    if (!process) return fail("OpenProcess", pid);

    /* The same routine in the target: its kernelbase plus our offset, so
     * that a different load address there does not matter. */
    HMODULE modules[512];
    DWORD needed = 0;
    if (!EnumProcessModulesEx(process, modules, sizeof modules, &needed,
                              LIST_MODULES_ALL))
        return fail("EnumProcessModulesEx", pid);
    void *remote = NULL;
    DWORD count = needed / sizeof(HMODULE);
    if (count > sizeof modules / sizeof modules[0])
        count = sizeof modules / sizeof modules[0];
    for (DWORD i = 0; i < count && !remote; i++) {
        wchar_t name[MAX_PATH];
        if (GetModuleBaseNameW(process, modules[i], name, MAX_PATH) &&
            _wcsicmp(name, L"kernelbase.dll") == 0)
            remote = (char *)modules[i] + ((char *)routine - (char *)ours);
    }
    if (!remote) {
        SetLastError(ERROR_MOD_NOT_FOUND);
        return fail("finding kernelbase.dll", pid);
    }

    HANDLE thread = CreateRemoteThread(process, NULL, 0,
                                       (LPTHREAD_START_ROUTINE)remote,
                                       (void *)(ULONG_PTR)event, 0, NULL);
    if (!thread) return fail("CreateRemoteThread", pid);
    if (WaitForSingleObject(thread, 10000) != WAIT_OBJECT_0) {
        SetLastError(WAIT_TIMEOUT);
        return fail("waiting for the handler thread", pid);
    }
    CloseHandle(thread);
    CloseHandle(process);
    return 0;
}
