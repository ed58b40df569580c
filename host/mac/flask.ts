// Flask TE front end: the subset of a Xen XSM/Flask policy that speaks about Argo,
// turned into the same PolicyModel as the YAML front end, so that Xen users can bring
// the rules they already have. Accepted (after m4 expansion, as checkpolicy sees it):
//   # comments
//   type guest_t;                 type guest_t, domain_type;     (attributes)
//   attribute domain_type;        typeattribute guest_t domain_type;
//   allow guest_t backend_t:argo { send register_single_source };
//   allow { a_t b_t } self:argo send;      allow domain_type xen_t:argo *;
// Rules for other classes and other statements (dontaudit, neverallow, role...) are
// skipped with a warning: they do not concern Argo. Anything that would change the
// meaning of an argo rule and is not understood is an error with file:line:col.
import { PolicyError } from "./errors.ts";
import { ARGO_PERMS, XEN_LABEL, type ArgoPerm, type Grant, type Origin, type PolicyModel } from "./model.ts";

interface Token {
  readonly text: string;
  readonly line: number;
  readonly col: number;
}

/** Statements of the TE language that never grant argo permissions: skipped with a warning. */
const SKIPPED = new Set([
  "dontaudit", "auditallow", "neverallow", "allowxperm", "role", "roleattribute", "user", "type_transition",
  "type_change", "type_member", "class", "sid", "common", "bool", "typealias", "permissive", "policycap",
  "range_transition", "category", "sensitivity", "dominance", "level", "mlsconstrain", "constrain",
  "fs_use_xattr", "genfscon", "isid", "pirqcon", "iomemcon", "ioportcon", "pcidevicecon", "devicetreecon",
]);

const PUNCT = new Set(["{", "}", ";", ":", ",", "(", ")", "~", "*", "-"]);

function tokenize(text: string, file: string): Token[] {
  const out: Token[] = [];
  let line = 1;
  let col = 1;
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === "\n") {
      line++;
      col = 1;
      i++;
    } else if (c === " " || c === "\t" || c === "\r") {
      i++;
      col++;
    } else if (c === "#") {
      while (i < text.length && text[i] !== "\n") i++;
    } else if (PUNCT.has(c)) {
      out.push({ text: c, line, col });
      i++;
      col++;
    } else if (/[A-Za-z0-9_.$]/.test(c)) {
      const start = i;
      while (i < text.length && /[A-Za-z0-9_.$]/.test(text[i])) i++;
      out.push({ text: text.slice(start, i), line, col });
      col += i - start;
    } else {
      throw new PolicyError(file, line, col, `unexpected character ${JSON.stringify(c)}`);
    }
  }
  return out;
}

interface AllowRule {
  readonly at: Token;
  readonly sources: Token[];
  readonly targets: Token[];
  readonly classes: Token[];
  readonly perms: Token[];
}

/** Parses Flask TE text. Throws PolicyError (file:line:col) on the first error. */
export function parseFlaskPolicy(text: string, file: string): PolicyModel {
  const toks = tokenize(text, file);
  let pos = 0;
  const end: Token = toks.length ? { text: "<end of file>", line: toks[toks.length - 1].line, col: toks[toks.length - 1].col + toks[toks.length - 1].text.length } : { text: "<end of file>", line: 1, col: 1 };
  const peek = (): Token => toks[pos] ?? end;
  const fail = (t: Token, what: string): never => {
    throw new PolicyError(file, t.line, t.col, what);
  };
  const next = (): Token => {
    const t = peek();
    if (t === end) fail(t, "unexpected end of file (a statement ends with ';')");
    pos++;
    return t;
  };
  const expect = (s: string): Token => {
    const t = next();
    if (t.text !== s) fail(t, `expected "${s}", found "${t.text}"`);
    return t;
  };
  const name = (what: string): Token => {
    const t = next();
    if (PUNCT.has(t.text)) fail(t, `expected ${what}, found "${t.text}"`);
    return t;
  };
  /** NAME, or { NAME ... }; `*` only where `star` allows it. */
  const set = (what: string, star: boolean): Token[] => {
    const t = peek();
    if (t.text === "~" || t.text === "-") fail(t, `"${t.text}" (complement/exclusion) is not supported in ${what}: list the ${what} explicitly`);
    if (t.text === "*") {
      if (!star) fail(t, `"*" is not supported in ${what}`);
      return [next()];
    }
    if (t.text !== "{") return [name(what)];
    next();
    const items: Token[] = [];
    while (peek().text !== "}") {
      const u = peek();
      if (u.text === "~" || u.text === "-") fail(u, `"${u.text}" (complement/exclusion) is not supported in ${what}: list the ${what} explicitly`);
      items.push(name(what));
    }
    const close = next();
    if (!items.length) fail(close, `empty set of ${what}`);
    return items;
  };

  const types = new Map<string, Origin>([[XEN_LABEL, { file, line: 0, col: 0 }]]);
  const attributes = new Map<string, Set<string>>();
  const declare = (t: Token) => {
    if (types.has(t.text) && t.text !== XEN_LABEL) fail(t, `type ${t.text} is already declared (line ${types.get(t.text)!.line})`);
    if (attributes.has(t.text)) fail(t, `${t.text} is already declared as an attribute`);
    types.set(t.text, { file, line: t.line, col: t.col });
  };
  const memberships: [Token, Token][] = []; // [type, attribute], resolved at the end
  const rules: AllowRule[] = [];
  const warnings: string[] = [];

  while (pos < toks.length) {
    const kw = next();
    if (peek().text === "(" && kw.text !== "if") {
      fail(kw, `m4 macro ${kw.text}(...) is not supported: expand the policy with m4 first (as the Xen build does)`);
    }
    switch (kw.text) {
      case "type": {
        const t = name("a type name");
        if (peek().text === "alias") fail(peek(), "type aliases are not supported");
        declare(t);
        while (peek().text === ",") {
          next();
          memberships.push([t, name("an attribute name")]);
        }
        expect(";");
        break;
      }
      case "attribute": {
        const a = name("an attribute name");
        if (types.has(a.text) || attributes.has(a.text)) fail(a, `${a.text} is already declared`);
        attributes.set(a.text, new Set());
        expect(";");
        break;
      }
      case "typeattribute": {
        const t = name("a type name");
        do memberships.push([t, name("an attribute name")]);
        while (peek().text === "," && next());
        expect(";");
        break;
      }
      case "allow": {
        const sources = set("source types", false);
        const targets = set("target types", false);
        expect(":");
        const classes = set("classes", false);
        const perms = set("permissions", true);
        expect(";");
        rules.push({ at: kw, sources, targets, classes, perms });
        break;
      }
      case "if":
      case "optional":
      case "require":
        fail(kw, `"${kw.text}" blocks are not supported: put argo rules outside conditionals`);
        break;
      default: {
        if (!SKIPPED.has(kw.text)) fail(kw, `unexpected "${kw.text}": expected type, attribute, typeattribute or allow`);
        // Skip to the end of the statement, over one level of braces.
        let depth = 0;
        for (;;) {
          const t = next();
          if (t.text === "{") depth++;
          else if (t.text === "}") depth--;
          else if (t.text === ";" && depth <= 0) break;
        }
        warnings.push(`${file}:${kw.line}: skipped "${kw.text}" statement (it grants no argo permission)`);
      }
    }
  }

  for (const [t, a] of memberships) {
    if (!types.has(t.text)) fail(t, `type ${t.text} is not declared`);
    const members = attributes.get(a.text);
    if (!members) fail(a, `attribute ${a.text} is not declared`);
    members!.add(t.text);
  }
  const expand = (t: Token, source?: string): string[] => {
    if (t.text === "self") {
      if (source === undefined) fail(t, `"self" is only valid as a target`);
      return [source!];
    }
    if (types.has(t.text)) return [t.text];
    const members = attributes.get(t.text);
    if (members) return [...members];
    return fail(t, `type ${t.text} is not declared (declare it with "type ${t.text};")`);
  };

  const grants: Grant[] = [];
  for (const r of rules) {
    const origin: Origin = { file, line: r.at.line, col: r.at.col };
    const argo = r.classes.some((c) => c.text === "argo");
    for (const c of r.classes) if (c.text !== "argo") warnings.push(`${file}:${r.at.line}: skipped rules for class ${c.text} (only the argo class is imported)`);
    const sources = r.sources.flatMap((t) => expand(t));
    // Validate targets even for self-free rules, so an undeclared type is an error here.
    for (const t of r.targets) if (t.text !== "self") expand(t);
    if (!argo) continue;
    const perms: ArgoPerm[] = [];
    for (const p of r.perms) {
      if (p.text === "*") perms.push(...ARGO_PERMS);
      else if ((ARGO_PERMS as readonly string[]).includes(p.text)) perms.push(p.text as ArgoPerm);
      else fail(p, `unknown argo permission "${p.text}" (the argo class has: ${ARGO_PERMS.join(", ")})`);
    }
    for (const s of sources) {
      for (const tt of r.targets) {
        for (const t of expand(tt, s)) {
          for (const perm of perms) {
            const toXen = perm === "enable" || perm === "register_any_source";
            if (toXen !== (t === XEN_LABEL)) {
              const note = toXen
                ? `${perm} is checked against ${XEN_LABEL} (Xen's flask_argo_${perm}), so "allow ${s} ${t}:argo ${perm}" has no effect`
                : `${perm} to ${XEN_LABEL} has no effect (${XEN_LABEL} is the hypervisor, not a domain)`;
              const w = `${file}:${r.at.line}: ${note}`;
              if (!warnings.includes(w)) warnings.push(w);
              continue;
            }
            grants.push({ source: s, target: t, perm, origin, via: `allow ${s} ${t}:argo` });
          }
        }
      }
    }
  }

  const labels = new Map([...types].filter(([t]) => t !== XEN_LABEL));
  // Warnings were found in two passes (statements, then rules); report them in file order.
  const lineOf = (w: string) => Number(w.slice(file.length + 1).split(":")[0]);
  warnings.sort((a, b) => lineOf(a) - lineOf(b));
  return { kind: "flask", source: file, labels, pairs: [], grants, warnings };
}
