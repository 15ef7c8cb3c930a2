/**
 * Plain text from the HTML that MDX renders for a component's children. Authors write a command
 * or a file as children (often as a fenced code block, which their editor highlights); the
 * component needs the exact characters back, to type them or to write them to the sandbox.
 */
const namedEntities: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

export function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (match, entity: string) => {
    if (entity[0] === "#") {
      const code = entity[1] === "x" || entity[1] === "X" ? Number.parseInt(entity.slice(2), 16) : Number.parseInt(entity.slice(1), 10);
      return Number.isFinite(code) ? String.fromCodePoint(code) : match;
    }
    return namedEntities[entity.toLowerCase()] ?? match;
  });
}

/** The language a fenced code block declared (shiki's `data-language`), if the children are one. */
export function codeLanguageOf(html: string): string | undefined {
  return /<pre[^>]*\sdata-language="([^"]+)"/.exec(html)?.[1];
}

/**
 * The text of rendered children: a fenced code block's code as written, or the text of plain
 * children (paragraph breaks become newlines). Trailing blank lines are dropped.
 */
export function htmlToText(html: string): string {
  const pre = /<pre[^>]*>([\s\S]*?)<\/pre>/.exec(html);
  const body = pre
    ? pre[1]!
    : html.replace(/<\/p>\s*<p[^>]*>/g, "\n").replace(/<br\s*\/?>/g, "\n");
  return decodeEntities(body.replace(/<[^>]+>/g, "")).replace(/^\n+/, "").replace(/\s+$/, "");
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Frontmatter text (objectives, summaries) may use `backticks` for commands, as in Markdown;
 * they become <code>. Everything else is escaped: frontmatter is text, not HTML.
 */
export function inlineCodeToHtml(text: string): string {
  return text
    .split(/(`[^`]+`)/)
    .map((part) => (part.length > 2 && part.startsWith("`") && part.endsWith("`") ? `<code>${escapeHtml(part.slice(1, -1))}</code>` : escapeHtml(part)))
    .join("");
}
