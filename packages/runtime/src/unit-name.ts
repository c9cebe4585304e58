/** systemd's unit name escaping (src/basic/unit-name.c), for machine-NAME.scope. */

/** unit_name_escape(): "/" becomes "-"; "-", "\\", a leading "." and any byte outside [0-9A-Za-z:_.] become \\xNN. */
export function unitNameEscape(s: string): string {
  let out = '';
  Buffer.from(s, 'utf8').forEach((b, i) => {
    const c = String.fromCharCode(b);
    if (c === '/') out += '-';
    else if ((i === 0 && c === '.') || !/^[0-9A-Za-z:_.]$/.test(c)) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else out += c;
  });
  return out;
}

/** unit_name_unescape(): what unitNameEscape() made, back ("-" is "/", \\xNN a byte); undefined for a malformed escape. */
export function unitNameUnescape(s: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '-') bytes.push(0x2f);
    else if (c === '\\') {
      const m = /^x([0-9a-fA-F]{2})/.exec(s.slice(i + 1));
      if (!m) return undefined;
      bytes.push(parseInt(m[1]!, 16));
      i += 3;
    } else bytes.push(...Buffer.from(c, 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}
