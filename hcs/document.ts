/**
 * The schema-2 document that describes a Linux VM booted directly from a
 * kernel, an initrd and a root disk, built from a few settings and checked
 * before HCS sees it.
 *
 * @module
 */

// Zod's v3 API, which the zod 4 package keeps: zod 4's own entry points
// load all of its 128 message locales, 10 MB and some 15 ms at every start
// against 3 MB for this one (BENCHMARKS.md).
import { z } from "zod/v3";

const SCHEMA_VERSION = { Major: 2, Minor: 1 } as const;

const absoluteWindowsPath = /^([A-Za-z]:[\\/]|\\\\)/;

/** A path HCS can use: absolute, for the host it runs on. */
const HostPath = z.string().min(1).refine(
  (path) => absoluteWindowsPath.test(path) || path.startsWith("/"),
  { message: "must be an absolute path" },
);

const Attachment = z.strictObject({
  Type: z.literal("VirtualDisk"),
  Path: HostPath,
  ReadOnly: z.boolean().optional(),
});

/** A virtual disk attached to a SCSI controller. */
export interface ScsiAttachment {
  /** Always `VirtualDisk`. */
  Type: "VirtualDisk";
  /** The VHD or VHDX on the host. */
  Path: string;
  /** Attach without write access. */
  ReadOnly?: boolean;
}

/** The schema-2 document vmrunner sends (the subset it uses). */
export interface ComputeSystemDocument {
  /** Shown by `vmrunner list` and hcsdiag. */
  Owner: string;
  /** 2.1 */
  SchemaVersion: { Major: 2; Minor: number };
  /** End the VM when its last handle closes, e.g. when vmrunner dies. */
  ShouldTerminateOnLastHandleClosed: boolean;
  /** The VM. */
  VirtualMachine: {
    /** Treat a guest reset as a stop. */
    StopOnReset: boolean;
    /** Boot a Linux kernel directly. */
    Chipset: {
      LinuxKernelDirect: {
        KernelFilePath: string;
        InitRdPath?: string;
        KernelCmdLine: string;
      };
    };
    /** Memory and processors. */
    ComputeTopology: {
      Memory: { SizeInMB: number };
      Processor: { Count: number };
    };
    /** Disks by controller and LUN, and COM ports by number ("0" = COM1). */
    Devices: {
      Scsi: Record<string, { Attachments: Record<string, ScsiAttachment> }>;
      ComPorts: Record<string, { NamedPipe: string }>;
    };
  };
}

/** Checks a {@linkcode ComputeSystemDocument} before HCS sees it. */
export const documentSchema: z.ZodType<ComputeSystemDocument> = z
  .strictObject({
    Owner: z.string().min(1),
    SchemaVersion: z.strictObject({
      Major: z.literal(2),
      Minor: z.number().int().min(1),
    }),
    ShouldTerminateOnLastHandleClosed: z.boolean(),
    VirtualMachine: z.strictObject({
      StopOnReset: z.boolean(),
      Chipset: z.strictObject({
        LinuxKernelDirect: z.strictObject({
          KernelFilePath: HostPath,
          InitRdPath: HostPath.optional(),
          KernelCmdLine: z.string(),
        }),
      }),
      ComputeTopology: z.strictObject({
        Memory: z.strictObject({
          SizeInMB: z.number().int().positive().multipleOf(2),
        }),
        Processor: z.strictObject({ Count: z.number().int().positive() }),
      }),
      Devices: z.strictObject({
        Scsi: z.record(
          z.string(),
          z.strictObject({ Attachments: z.record(z.string(), Attachment) }),
        ),
        ComPorts: z.record(
          z.string(),
          z.strictObject({ NamedPipe: z.string().startsWith("\\\\.\\pipe\\") }),
        ),
      }),
    }),
  });

/** What a VM is made of. Paths must already be absolute. */
export interface VmDocumentSettings {
  /** The owner tag HCS records (shown by `vmrunner list`). */
  owner: string;
  /** The kernel image. */
  kernel: string;
  /** The initrd, if the kernel needs one. */
  initrd?: string;
  /** The root disk, a VHDX attached as SCSI controller 0, LUN 0. */
  rootfs: string;
  /** Attach the root disk read-only, so that several VMs can share it. */
  readOnly?: boolean;
  /** The kernel command line. */
  cmdline: string;
  /** Memory in MB; rounded up to an even number, as HCS requires. */
  memoryMb: number;
  /** Virtual processors. */
  cpus: number;
  /** The named pipe COM1 is connected to, `\\.\pipe\...`. */
  consolePipe: string;
}

/**
 * Builds and checks the document for a VM.
 *
 * @throws {z.ZodError} when a setting is out of range or a path is not
 * absolute.
 */
export function vmDocument(
  settings: VmDocumentSettings,
): ComputeSystemDocument {
  return documentSchema.parse({
    Owner: settings.owner,
    SchemaVersion: SCHEMA_VERSION,
    // A VM whose creator dies (even by SIGKILL) must not linger.
    ShouldTerminateOnLastHandleClosed: true,
    VirtualMachine: {
      // With panic=-1 a guest panic resets; treat that as the end.
      StopOnReset: true,
      Chipset: {
        LinuxKernelDirect: {
          KernelFilePath: settings.kernel,
          InitRdPath: settings.initrd,
          KernelCmdLine: settings.cmdline,
        },
      },
      ComputeTopology: {
        Memory: { SizeInMB: Math.ceil(settings.memoryMb / 2) * 2 },
        Processor: { Count: settings.cpus },
      },
      Devices: {
        Scsi: {
          "0": {
            Attachments: {
              "0": {
                Type: "VirtualDisk",
                Path: settings.rootfs,
                ...(settings.readOnly ? { ReadOnly: true } : {}),
              },
            },
          },
        },
        ComPorts: { "0": { NamedPipe: settings.consolePipe } },
      },
    },
  });
}
