import { readdir, readFile } from 'node:fs/promises';

/**
 * Memory (bytes) of every process in process group `pgid`, from /proc: a puppeteer Chromium runs detached, so its
 * browser pid leads a group holding its renderers, GPU and utility processes. Each process counts its proportional
 * set size (`Pss` of smaps_rollup: a page shared by n processes counts 1/n in each), so pages Chromium's processes
 * share are counted once, not once per process as their resident sizes would; `VmRSS` where smaps_rollup is missing
 * (kernels before 4.14). Undefined where /proc is missing (not Linux) or the group has no process left.
 */
export async function processGroupRssBytes(pgid: number): Promise<number | undefined> {
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return undefined;
  }
  let total = 0;
  let found = false;
  await Promise.all(
    entries
      .filter((name) => /^\d+$/.test(name))
      .map(async (pid) => {
        try {
          const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
          // Fields after the command (which may hold spaces and parentheses): state ppid pgrp ...
          if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) !== pgid) return;
          const pss = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8').then(
            (text) => /^Pss:\s+(\d+) kB$/m.exec(text),
            () => null,
          );
          const kb = pss ?? /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
          if (!kb) return;
          total += Number(kb[1]) * 1024;
          found = true;
        } catch {
          // The process exited meanwhile.
        }
      }),
  );
  return found ? total : undefined;
}
