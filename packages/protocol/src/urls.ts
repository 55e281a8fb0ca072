import { describe } from './describe.js';
import { ConfigError } from './errors.js';

/**
 * Validates a base URL that wafleet sends requests to (an instance's public URL): http or https, no credentials
 * (they would be shown in 421 bodies, `/sessions/:id` and webhooks), no query or fragment (paths are appended
 * to it). Returns it without a trailing slash.
 * @throws ConfigError naming `option`
 */
export function validateBaseUrl(option: string, value: unknown): string {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    throw new ConfigError(option, `Expected \`${option}\` to be an absolute http(s) URL, got ${describe(value)}`);
  }
  if (typeof value !== 'string' || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
    throw new ConfigError(option, `Expected \`${option}\` to be an http: or https: URL, got ${describe(url.protocol)}`);
  }
  // Never quote the URL here: it holds the credentials.
  if (url.username || url.password) throw new ConfigError(option, `Expected \`${option}\` to carry no user name or password`);
  // Not quoted either: a query often carries a token.
  if (url.search || url.hash) throw new ConfigError(option, `Expected \`${option}\` to have no query or fragment`);
  return url.toString().replace(/\/+$/, '');
}

/**
 * The URL of `path` under `base` (a {@link validateBaseUrl} result), refusing anything that would leave `base`'s
 * origin or path prefix: an absolute URL, `//host`, `/\host`, or dot segments that climb above the base path.
 * @throws ConfigError naming `option`
 */
export function urlUnder(option: string, base: string, path: unknown): URL {
  if (typeof path !== 'string' || !path.startsWith('/')) {
    throw new ConfigError(option, `Expected \`${option}\` to be a path starting with '/', got ${describe(path)}`);
  }
  const baseUrl = new URL(`${base}/`);
  let url: URL;
  try {
    url = new URL(`${base}${path}`);
  } catch {
    throw new ConfigError(option, `Expected \`${option}\` to be a valid URL path, got ${describe(path)}`);
  }
  if (url.origin !== baseUrl.origin || !url.pathname.startsWith(baseUrl.pathname)) {
    throw new ConfigError(option, `Expected \`${option}\` to stay on ${baseUrl.origin}${baseUrl.pathname}, got ${describe(path)}`);
  }
  return url;
}
