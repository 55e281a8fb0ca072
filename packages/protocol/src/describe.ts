/**
 * Shows an untrusted or invalid value in an error message: JSON where it is faithful, `NaN`, `Infinity`,
 * `undefined`, `123n` and `function` where JSON is not, and at most 80 characters, so a message fits a log line.
 */
export function describe(value: unknown): string {
  let text: string;
  if (typeof value === 'number' && !Number.isFinite(value)) text = String(value);
  else if (typeof value === 'bigint') text = `${value}n`;
  else if (typeof value === 'function') text = 'a function';
  else if (typeof value === 'symbol') text = value.toString();
  else {
    try {
      text = JSON.stringify(value) ?? String(value);
    } catch {
      text = Object.prototype.toString.call(value);
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
