// Keeps tray notifications rare: per subject and overall.
#pragma once

#include <QDateTime>
#include <QHash>
#include <QString>

namespace keyrelay {

class NotificationLimiter
{
public:
    NotificationLimiter(qint64 perSubjectMs = 10 * 60 * 1000, qint64 overallMs = 30 * 1000);

    /// True when a notification about @p subject may be shown at @p nowMs (and records it).
    bool allow(const QString &subject, qint64 nowMs);
    bool allow(const QString &subject) { return allow(subject, QDateTime::currentMSecsSinceEpoch()); }

private:
    qint64 m_perSubjectMs;
    qint64 m_overallMs;
    qint64 m_lastAny = -1;
    QHash<QString, qint64> m_lastBySubject;
};

} // namespace keyrelay
