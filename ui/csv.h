// CSV fields and lines for exports: RFC 4180 quoting, and cells a spreadsheet would run as formulas defused.
#pragma once

#include <QString>
#include <QStringList>

namespace keyrelay {

/// One CSV field. A field starting with '=', '+', '-', '@', a tab or a carriage return gets a leading
/// apostrophe, so a spreadsheet shows it as text instead of evaluating it (plain numbers such as "-1",
/// and a lone "-", stay as they are); a field holding a comma, quote, CR or LF, or starting or ending
/// with a space, is quoted with inner quotes doubled.
QString csvField(const QString &text);

/// @p fields as one CSV line, each through csvField(), ending in CR LF.
QString csvLine(const QStringList &fields);

} // namespace keyrelay
