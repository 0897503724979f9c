#include "csv.h"

#include <QRegularExpression>

namespace keyrelay {

QString csvField(const QString &text)
{
    // Plain numbers such as "-1" and a lone "-" cannot be formulas and stay as they are.
    static const QRegularExpression plainNumber(QStringLiteral("^-?[0-9]+(\\.[0-9]+)?$"));
    QString field = text;
    if (!field.isEmpty() && QStringLiteral("=+-@\t\r").contains(field.front()) && field != QLatin1String("-")
        && !plainNumber.match(field).hasMatch())
        field.prepend(QLatin1Char('\''));
    const bool needsQuotes = field.contains(QLatin1Char(',')) || field.contains(QLatin1Char('"'))
        || field.contains(QLatin1Char('\n')) || field.contains(QLatin1Char('\r'))
        || (!field.isEmpty() && (field.front().isSpace() || field.back().isSpace()));
    if (!needsQuotes)
        return field;
    field.replace(QLatin1Char('"'), QStringLiteral("\"\""));
    return QLatin1Char('"') + field + QLatin1Char('"');
}

QString csvLine(const QStringList &fields)
{
    QStringList escaped;
    escaped.reserve(fields.size());
    for (const QString &field : fields)
        escaped << csvField(field);
    return escaped.join(QLatin1Char(',')) + QStringLiteral("\r\n");
}

} // namespace keyrelay
