// Server-sent events framing (the `text/event-stream` format), fed text as it arrives in
// arbitrary pieces: frames end at a blank line; `event:` names one, `data:` lines join with
// newlines, `:` lines are comments; CRLF and LF both end lines. Data that parses as JSON is
// passed on parsed.

/** Returns `{ push(text), end() }`; calls `onEvent(name, data)` for each complete event. */
export function sseParser(onEvent) {
  let buf = '';
  const frame = (text) => {
    let name = 'message';
    const data = [];
    for (const line of text.split(/\r?\n/)) {
      if (!line || line.startsWith(':')) continue;
      const i = line.indexOf(':');
      const key = i < 0 ? line : line.slice(0, i);
      const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
      if (key === 'event') name = val;
      else if (key === 'data') data.push(val);
    }
    if (!data.length) return;
    const joined = data.join('\n');
    let parsed = joined;
    try { parsed = JSON.parse(joined); } catch { /* plain text */ }
    onEvent(name, parsed);
  };
  return {
    push(text) {
      buf += text;
      for (let m = /\r?\n\r?\n/.exec(buf); m; m = /\r?\n\r?\n/.exec(buf)) {
        frame(buf.slice(0, m.index));
        buf = buf.slice(m.index + m[0].length);
      }
    },
    end() {
      if (buf.trim()) frame(buf);
      buf = '';
    },
  };
}
