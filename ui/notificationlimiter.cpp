#include "notificationlimiter.h"

namespace keyrelay {

NotificationLimiter::NotificationLimiter(qint64 perSubjectMs, qint64 overallMs)
    : m_perSubjectMs(perSubjectMs), m_overallMs(overallMs)
{
}

bool NotificationLimiter::allow(const QString &subject, qint64 nowMs)
{
    if (m_lastAny >= 0 && nowMs - m_lastAny < m_overallMs)
        return false;
    const auto it = m_lastBySubject.constFind(subject);
    if (it != m_lastBySubject.constEnd() && nowMs - it.value() < m_perSubjectMs)
        return false;
    m_lastAny = nowMs;
    m_lastBySubject.insert(subject, nowMs);
    return true;
}

} // namespace keyrelay
