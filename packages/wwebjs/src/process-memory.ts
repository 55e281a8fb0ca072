import { readdir, readFile } from 'node:fs/promises';

/**
 * Resident memory (bytes) of every process in process group `pgid`, from /proc: a puppeteer Chromium runs detached,
 * so its browser pid leads a group holding its renderers, GPU and utility processes. Undefined where /proc is missing
 * (not Linux) or the group has no process left.
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
          const rss = /^VmRSS:\s+(\d+) kB$/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
          if (!rss) return;
          total += Number(rss[1]) * 1024;
          found = true;
        } catch {
          // The process exited meanwhile.
        }
      }),
  );
  return found ? total : undefined;
}
