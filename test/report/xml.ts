// A strict XML reader for the report tests: saxes (a conformant XML 1.0 parser) rejects anything
// that is not well-formed, such as a bare "&" or "<" in text; the elements come back as a tree.
import { SaxesParser } from 'saxes';

export interface XmlElement {
  readonly name: string;
  readonly attributes: Record<string, string>;
  readonly children: XmlElement[];
  /** The text directly inside the element, concatenated. */
  text: string;
}

/** Parses `xml` as a document (throws on the first well-formedness error) and returns its root. */
export function parseXml(xml: string): XmlElement {
  const parser = new SaxesParser({ xmlns: false });
  const stack: XmlElement[] = [];
  let root: XmlElement | undefined;
  parser.on('error', (e) => {
    throw e;
  });
  parser.on('opentag', (tag) => {
    const element: XmlElement = { name: tag.name, attributes: { ...(tag.attributes as Record<string, string>) }, children: [], text: '' };
    stack.at(-1)?.children.push(element);
    root ??= element;
    stack.push(element);
  });
  parser.on('text', (text) => {
    const top = stack.at(-1);
    if (top) top.text += text;
  });
  parser.on('closetag', () => stack.pop());
  parser.write(xml).close();
  if (!root) throw new Error('no root element');
  return root;
}

/** Every element under `root` (itself included) that `match` accepts, in document order. */
export function findAll(root: XmlElement, match: (e: XmlElement) => boolean): XmlElement[] {
  const found: XmlElement[] = [];
  const visit = (e: XmlElement) => {
    if (match(e)) found.push(e);
    e.children.forEach(visit);
  };
  visit(root);
  return found;
}

/** Elements named `name` whose class attribute contains `className` (any when omitted). */
export function byTag(root: XmlElement, name: string, className?: string): XmlElement[] {
  return findAll(root, (e) => e.name === name && (className === undefined || (e.attributes.class ?? '').split(' ').includes(className)));
}
