/**
 * Maps an async source through an async function with up to `concurrency` calls in flight, yielding
 * results in source order. Stops pulling from the source while `concurrency` results wait, so memory
 * stays bounded; closes the source if the consumer stops early or a call fails.
 */
export async function* orderedMap<T, R>(source: AsyncIterable<T> | Iterable<T>, fn: (item: T) => Promise<R>, concurrency: number): AsyncGenerator<R> {
  const it = Symbol.asyncIterator in source ? (source as AsyncIterable<T>)[Symbol.asyncIterator]() : toAsync((source as Iterable<T>)[Symbol.iterator]());
  const queue: Promise<R>[] = [];
  let done = false;
  try {
    for (;;) {
      while (!done && queue.length < concurrency) {
        const n = await it.next();
        if (n.done) done = true;
        else {
          const p = fn(n.value);
          p.catch(() => {}); // observed when its turn comes; this only keeps it from counting as unhandled meanwhile
          queue.push(p);
        }
      }
      const next = queue.shift();
      if (!next) return;
      yield await next;
    }
  } finally {
    if (!done) await it.return?.();
  }
}

function toAsync<T>(it: Iterator<T>): AsyncIterator<T> {
  return {
    next: async () => it.next(),
    return: async () => it.return?.() ?? { done: true, value: undefined },
  };
}
