// Positions in YAML sources: from a JSON-pointer path (as ajv reports errors) back to the
// node a user wrote, so that every error can say file:line:col. Shared by the policy
// parser and the run-config parser.
import { isAlias, isMap, isScalar, isSeq, type Document, type Node as YamlNode } from "yaml";

/** Walks a JSON-pointer path (already split) through the YAML tree. */
export function locate(doc: Document, path: string[]): { node: YamlNode | null; key: YamlNode | null } {
  let node = doc.contents as YamlNode | null;
  let key: YamlNode | null = null;
  for (const seg of path) {
    if (isAlias(node)) node = (node.resolve(doc) as YamlNode | undefined) ?? node;
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === seg);
      if (!pair) break;
      key = pair.key as YamlNode;
      node = (pair.value as YamlNode | null) ?? key;
    } else if (isSeq(node)) {
      const item = node.items[Number(seg)] as YamlNode | undefined;
      if (!item) break;
      node = item;
      key = null;
    } else break;
  }
  return { node, key };
}

export function offsetOf(node: YamlNode | null | undefined): number {
  return node?.range?.[0] ?? 0;
}

export function splitPointer(p: string): string[] {
  return p === "" ? [] : p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}
