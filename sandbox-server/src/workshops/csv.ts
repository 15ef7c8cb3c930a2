/**
 * CSV for spreadsheets (RFC 4180: comma separated, CRLF, fields quoted when they hold a quote,
 * comma or line break). Display names are typed by learners, so every field is also defused:
 *
 * WARNING: a cell that starts with = + - @ (or a tab or carriage return) is a formula to Excel,
 * LibreOffice and Google Sheets ("=HYPERLINK(...)" phishing, DDE). Such a field gets a leading
 * apostrophe, which spreadsheets show as text and do not evaluate.
 */
export function csvField(value: string): string {
  const defused = /^[\s]*[=+\-@]/.test(value) || /^[\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(defused) ? `"${defused.replace(/"/g, '""')}"` : defused;
}

export function csvLine(fields: readonly string[]): string {
  return fields.map(csvField).join(",") + "\r\n";
}

export function toCsv(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  return csvLine(header) + rows.map(csvLine).join("");
}
