#include "requestrecord.h"

namespace keyrelay {

namespace {
// Client-supplied text (path, model, error) goes into a one-line log: control characters must not
// start a new line or forge one, so they are escaped.
QString oneLine(const QString &text)
{
    QString out;
    out.reserve(text.size());
    for (const QChar c : text) {
        if (c == QLatin1Char('\n'))
            out += QLatin1String("\\n");
        else if (c == QLatin1Char('\r'))
            out += QLatin1String("\\r");
        else if (c == QLatin1Char('\t'))
            out += QLatin1String("\\t");
        else if (c.category() == QChar::Other_Control)
            out += QStringLiteral("\\x%1").arg(c.unicode(), 2, 16, QLatin1Char('0'));
        else
            out += c;
    }
    return out;
}

QString orDash(const QString &text)
{
    return text.isEmpty() ? QStringLiteral("-") : oneLine(text);
}

QString count(qint64 value)
{
    return value >= 0 ? QString::number(value) : QStringLiteral("?");
}
} // namespace

QString RequestRecord::toLogLine() const
{
    // Built by concatenation, not chained QString::arg(): a "%1" inside a path or model would be
    // substituted by a later arg() call.
    QString line = startedAt.toString(Qt::ISODateWithMs) + QLatin1Char(' ') + oneLine(method)
        + QLatin1Char(' ') + orDash(path) + QLatin1String(" model=") + orDash(model) + QLatin1String(" key=")
        + orDash(keyLabel)
        + (provider.isEmpty() || provider == QLatin1String("default") ? QString()
                                                                       : QLatin1String(" provider=") + oneLine(provider))
        + QLatin1String(" status=") + QString::number(status) + QLatin1String(" latency=")
        + QString::number(latencyMs) + QLatin1String("ms time=") + QString::number(durationMs)
        + QLatin1String("ms in=") + QString::number(requestBytes) + QLatin1String("B out=")
        + QString::number(responseBytes) + QLatin1String("B tokens=");
    if (totalTokens >= 0)
        line += count(promptTokens) + QLatin1Char('+') + count(completionTokens) + QLatin1Char('=')
            + count(totalTokens);
    else
        line += QLatin1Char('-');
    if (streamed)
        line += QLatin1String(" stream");
    if (rewritten)
        line += QLatin1String(" reordered");
    if (attempts > 1)
        line += QLatin1String(" attempts=") + QString::number(attempts);
    if (fellBack)
        line += QLatin1String(" fallback");
    if (originBlocked)
        line += QLatin1String(" origin=") + orDash(origin) + QLatin1String(" blocked");
    if (!error.isEmpty())
        line += QLatin1String(" error=\"") + oneLine(error) + QLatin1Char('"');
    return line;
}

} // namespace keyrelay
