/**
 * A JSON parser that keeps what systemd's JsonVariant keeps and JSON.parse() loses: where each value starts (line
 * and column, for "FILE:LINE:COLUMN: message"), the kind of each number as systemd's json_parse_number() decides it
 * (a negative integer is "integer", a non-negative one "unsigned", anything else or out of 64 bits "real"), exact
 * 64-bit integers, and an object's keys in file order, duplicates included.
 */

export type JsonType = 'string' | 'integer' | 'unsigned' | 'real' | 'boolean' | 'array' | 'object' | 'null';

interface At {
  line: number;
  column: number;
}

export type JsonNode = At &
  (
    | { type: 'string'; value: string }
    | { type: 'integer' | 'unsigned'; value: bigint }
    | { type: 'real'; value: number }
    | { type: 'boolean'; value: boolean }
    | { type: 'null' }
    | { type: 'array'; items: JsonNode[] }
    | { type: 'object'; entries: Array<[string, JsonNode]> }
  );

/** A syntax error at LINE:COLUMN (1-based), as json_parse_file() reports it: errno EINVAL. */
export class JsonSyntaxError extends Error {
  override name = 'JsonSyntaxError';
  constructor(
    readonly line: number,
    readonly column: number,
  ) {
    super('Invalid argument');
  }
}

const INT64_MIN = -(1n << 63n);
const UINT64_MAX = (1n << 64n) - 1n;

/** Parses TEXT as one JSON value. Throws JsonSyntaxError where the offending token starts. */
export function parseJsonLocated(text: string): JsonNode {
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const at = (): At => ({ line, column: i - lineStart + 1 });
  const fail = (): never => {
    throw new JsonSyntaxError(line, i - lineStart + 1);
  };
  const ws = (): void => {
    for (;;) {
      const c = text[i];
      if (c === '\n') {
        i++;
        line++;
        lineStart = i;
      } else if (c === ' ' || c === '\t' || c === '\r') i++;
      else return;
    }
  };
  const str = (): string => {
    i++; // "
    let out = '';
    for (;;) {
      const c = text[i];
      if (c === undefined || c === '\n' || c < ' ') fail();
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\\') {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (e !== undefined && simple[e] !== undefined) {
          out += simple[e];
          i += 2;
        } else if (e === 'u') {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail();
          const code = parseInt(hex, 16);
          if (code === 0) fail(); // systemd refuses NUL in strings
          out += String.fromCharCode(code);
          i += 6;
        } else fail();
        continue;
      }
      out += c;
      i++;
    }
  };
  const num = (pos: At): JsonNode => {
    const m = /^-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(text.slice(i, i + 400));
    if (!m || m[0] === '-') fail();
    const t = m![0];
    i += t.length;
    if (m![1] === undefined && m![2] === undefined) {
      const v = BigInt(t);
      if (t.startsWith('-') && v >= INT64_MIN) return { ...pos, type: 'integer', value: v };
      if (!t.startsWith('-') && v <= UINT64_MAX) return { ...pos, type: 'unsigned', value: v };
    }
    return { ...pos, type: 'real', value: Number(t) };
  };
  const value = (depth: number): JsonNode => {
    if (depth > 2048) fail();
    ws();
    const pos = at();
    const c = text[i];
    if (c === '{') {
      i++;
      const entries: Array<[string, JsonNode]> = [];
      ws();
      if (text[i] === '}') {
        i++;
        return { ...pos, type: 'object', entries };
      }
      for (;;) {
        ws();
        if (text[i] !== '"') fail();
        const k = str();
        ws();
        if (text[i] !== ':') fail();
        i++;
        entries.push([k, value(depth + 1)]);
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === '}') {
          i++;
          return { ...pos, type: 'object', entries };
        }
        fail();
      }
    }
    if (c === '[') {
      i++;
      const items: JsonNode[] = [];
      ws();
      if (text[i] === ']') {
        i++;
        return { ...pos, type: 'array', items };
      }
      for (;;) {
        items.push(value(depth + 1));
        ws();
        if (text[i] === ',') {
          i++;
          continue;
        }
        if (text[i] === ']') {
          i++;
          return { ...pos, type: 'array', items };
        }
        fail();
      }
    }
    if (c === '"') return { ...pos, type: 'string', value: str() };
    if (c === '-' || (c !== undefined && c >= '0' && c <= '9')) return num(pos);
    for (const [word, node] of [
      ['true', { type: 'boolean', value: true }],
      ['false', { type: 'boolean', value: false }],
      ['null', { type: 'null' }],
    ] as const)
      if (text.startsWith(word, i)) {
        i += word.length;
        return { ...pos, ...node } as JsonNode;
      }
    return fail();
  };
  const v = value(0);
  ws();
  if (i < text.length) fail();
  return v;
}

/**
 * json_variant_has_type(): NODE qualifies as TYPE ('number' is any of integer, unsigned, real); integers convert
 * where the value fits, a real where it is a whole number.
 */
export function jsonHasType(node: JsonNode, type: JsonType | 'number'): boolean {
  if (node.type === type) return true;
  const isNum = node.type === 'integer' || node.type === 'unsigned' || node.type === 'real';
  if (type === 'number') return isNum;
  if (!isNum) return false;
  if (node.type === 'integer' && type === 'unsigned') return node.value >= 0n;
  if (node.type === 'unsigned' && type === 'integer') return node.value <= (1n << 63n) - 1n;
  if (node.type !== 'real' && type === 'real') return true;
  if (node.type === 'real' && (type === 'integer' || type === 'unsigned'))
    return Number.isInteger(node.value) && (type === 'unsigned' ? node.value >= 0 && node.value < 2 ** 64 : Math.abs(node.value) < 2 ** 63);
  return false;
}

/** The value of a number node as an integer (json_variant_unsigned()/integer(): a real is truncated). */
export function jsonInteger(node: JsonNode): bigint {
  if (node.type === 'integer' || node.type === 'unsigned') return node.value;
  if (node.type === 'real') return BigInt(Math.trunc(node.value));
  return 0n;
}
