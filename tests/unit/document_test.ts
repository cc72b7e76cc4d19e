import assert from "node:assert/strict";
import { documentSchema, vmDocument } from "../../hcs/document.ts";

const settings = {
  owner: "vmrunner",
  kernel: "C:\\vm\\vmlinuz",
  initrd: "C:\\vm\\initrd",
  rootfs: "C:\\vm\\rootfs.vhdx",
  cmdline: "console=ttyS0 root=/dev/sda rw init=/sbin/init",
  memoryMb: 1023,
  cpus: 4,
  consolePipe: "\\\\.\\pipe\\vm-1-console",
};

Deno.test("vmDocument() builds the LinuxKernelDirect document", () => {
  const document = vmDocument(settings);
  assert.deepEqual(document, {
    Owner: "vmrunner",
    SchemaVersion: { Major: 2, Minor: 1 },
    ShouldTerminateOnLastHandleClosed: true,
    VirtualMachine: {
      StopOnReset: true,
      Chipset: {
        LinuxKernelDirect: {
          KernelFilePath: "C:\\vm\\vmlinuz",
          InitRdPath: "C:\\vm\\initrd",
          KernelCmdLine: "console=ttyS0 root=/dev/sda rw init=/sbin/init",
        },
      },
      ComputeTopology: {
        Memory: { SizeInMB: 1024 },
        Processor: { Count: 4 },
      },
      Devices: {
        Scsi: {
          "0": {
            Attachments: {
              "0": { Type: "VirtualDisk", Path: "C:\\vm\\rootfs.vhdx" },
            },
          },
        },
        ComPorts: { "0": { NamedPipe: "\\\\.\\pipe\\vm-1-console" } },
      },
    },
  });
});

Deno.test("vmDocument() rounds memory up to an even number of MB", () => {
  for (
    const [given, expected] of [[1, 2], [2, 2], [4095, 4096], [4096, 4096]]
  ) {
    const document = vmDocument({ ...settings, memoryMb: given });
    assert.equal(
      document.VirtualMachine.ComputeTopology.Memory.SizeInMB,
      expected,
    );
  }
});

Deno.test("vmDocument() marks a shared root disk read-only", () => {
  const document = vmDocument({ ...settings, readOnly: true });
  assert.equal(
    document.VirtualMachine.Devices.Scsi["0"].Attachments["0"].ReadOnly,
    true,
  );
});

Deno.test("vmDocument() rejects relative paths and bad counts", () => {
  assert.throws(
    () => vmDocument({ ...settings, kernel: "vmlinuz" }),
    /absolute/,
  );
  assert.throws(() => vmDocument({ ...settings, cpus: 0 }));
  assert.throws(() => vmDocument({ ...settings, memoryMb: -2 }));
  assert.throws(() => vmDocument({ ...settings, consolePipe: "COM1" }));
});

Deno.test("documentSchema accepts POSIX paths for the simulator", () => {
  const document = vmDocument({
    ...settings,
    kernel: "/work/vm-image/vmlinuz",
    initrd: "/work/vm-image/initrd",
    rootfs: "/work/vm-image/rootfs.vhdx",
  });
  assert.ok(documentSchema.safeParse(document).success);
});
