/**
 * What machine a bench ran on, for the report: numbers from a 2-core
 * nested VM and from a workstation are not comparable.
 *
 * @module
 */

/** The host, as the report shows it. */
export interface HostInfo {
  /** ISO date and time of the run. */
  date: string;
  cpuModel: string;
  cores: number;
  memoryGiB: number;
  deno: string;
  qemu: string;
  kernel: string;
  /** The 1-minute load average when the run started; others' VMs show. */
  loadAverage: number;
}

/** Collects {@linkcode HostInfo}; what cannot be read is "unknown". */
export async function hostInfo(): Promise<HostInfo> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = cpuinfo.match(/^model name\s*:\s*(.+)$/m)?.[1].trim();
  let memoryGiB = NaN;
  try {
    memoryGiB = Deno.systemMemoryInfo().total / 2 ** 30;
  } catch {
    // No permission: shown as NaN.
  }
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
    cpuModel: model ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryGiB,
    deno: Deno.version.deno,
    qemu: await firstLine(qemuBinary(), ["--version"]),
    kernel: await firstLine("uname", ["-r"]),
    loadAverage: loadAverage(),
  };
}

/** The 1-minute load average, or NaN without permission. */
export function loadAverage(): number {
  try {
    return Deno.loadavg()[0];
  } catch {
    return NaN;
  }
}

/** The QEMU the simulator runs (it honours $HCS_SIM_QEMU too). */
function qemuBinary(): string {
  return Deno.env.get("HCS_SIM_QEMU") || "qemu-system-x86_64";
}

async function firstLine(command: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await new Deno.Command(command, {
      args,
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(stdout).split("\n")[0].trim() ||
      "unknown";
  } catch {
    return "unknown";
  }
}
