#include "requestrecord.h"

#include <QStringList>

namespace keyrelay {

QString RequestRecord::toLogLine() const
{
    const auto orDash = [](const QString &s) { return s.isEmpty() ? QStringLiteral("-") : s; };
    QString tokens = QStringLiteral("-");
    if (totalTokens >= 0) {
        tokens = QStringLiteral("%1+%2=%3")
                     .arg(promptTokens >= 0 ? QString::number(promptTokens) : QStringLiteral("?"),
                          completionTokens >= 0 ? QString::number(completionTokens) : QStringLiteral("?"))
                     .arg(totalTokens);
    }
    QString line = QStringLiteral("%1 %2 %3 model=%4 key=%5 status=%6 latency=%7ms time=%8ms in=%9B out=%10B")
                       .arg(startedAt.toString(Qt::ISODateWithMs), method, path, orDash(model), orDash(keyLabel))
                       .arg(status)
                       .arg(latencyMs)
                       .arg(durationMs)
                       .arg(requestBytes)
                       .arg(responseBytes);
    line += QStringLiteral(" tokens=") + tokens;
    if (streamed)
        line += QStringLiteral(" stream");
    if (rewritten)
        line += QStringLiteral(" reordered");
    if (attempts > 1)
        line += QStringLiteral(" attempts=%1").arg(attempts);
    if (!error.isEmpty())
        line += QStringLiteral(" error=\"%1\"").arg(error);
    return line;
}

} // namespace keyrelay
