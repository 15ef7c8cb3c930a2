import { describe, expect, it } from "vitest";
import { codeLanguageOf, decodeEntities, htmlToText, inlineCodeToHtml } from "../../../src/lib/code-text.ts";

describe("text of rendered MDX children (Run and File blocks)", () => {
  it("takes a fenced code block's code exactly, entities decoded", () => {
    const html =
      '<pre class="astro-code" data-language="dockerfile"><code><span class="line"><span style="color:#D73A49">FROM</span> nginx:1.22</span>\n' +
      '<span class="line">RUN echo &quot;a &amp;&amp; b&quot; &gt; /x &#x3C;y</span>\n</code></pre>';
    expect(htmlToText(html)).toBe('FROM nginx:1.22\nRUN echo "a && b" > /x <y');
    expect(codeLanguageOf(html)).toBe("dockerfile");
  });

  it("joins plain paragraphs with newlines", () => {
    expect(htmlToText("<p>docker ps</p>\n<p>docker images</p>")).toBe("docker ps\ndocker images");
    expect(htmlToText("docker run --rm hello-world")).toBe("docker run --rm hello-world");
  });

  it("decodes numeric and named entities and leaves unknown ones", () => {
    expect(decodeEntities("&#39;&#x27;&apos;&nbsp;&bogus;")).toBe("'''\u00a0&bogus;");
  });
});

describe("inline code in frontmatter text", () => {
  it("turns backticks into <code> and escapes everything else", () => {
    expect(inlineCodeToHtml("Run with `-it` & <b>")).toBe("Run with <code>-it</code> &#38; &#60;b&#62;");
  });
});
