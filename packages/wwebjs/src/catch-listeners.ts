type Listener = (...args: unknown[]) => unknown;

/**
 * Makes every listener added to `emitter` from now on unable to reject unhandled: whatsapp-web.js adds async listeners
 * to its page (`response`, `framenavigated`) whose awaits reject once the page crashed or closed, and an unhandled
 * rejection ends a Node process with default settings, so one crashed renderer would take every session of the
 * instance down with it. A rejection goes to `onError` instead. `off` keeps working with the listener as it was added.
 */
export function catchAsyncListeners(emitter: object, onError: (event: string, err: unknown) => void): void {
  const wrappers = new WeakMap<Listener, Listener>();
  // A puppeteer Page or a Node EventEmitter: both add with on(event, listener) and remove with off(event, listener?).
  const target = emitter as Record<'on' | 'off', (event: string, listener?: Listener) => unknown>;
  const on = target.on.bind(emitter);
  const off = target.off.bind(emitter);
  target.on = (event, listener) => {
    if (typeof listener !== 'function') return on(event, listener);
    let wrapper = wrappers.get(listener);
    if (!wrapper) {
      wrapper = (...args: unknown[]) => {
        const result = listener(...args);
        if (result instanceof Promise) result.catch((err: unknown) => onError(event, err));
        return result;
      };
      wrappers.set(listener, wrapper);
    }
    on(event, wrapper);
    return emitter;
  };
  target.off = (event, listener) => {
    off(event, listener === undefined ? undefined : (wrappers.get(listener) ?? listener));
    return emitter;
  };
}
