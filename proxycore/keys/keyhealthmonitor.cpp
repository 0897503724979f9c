#include "keyhealthmonitor.h"

#include "keypool.h"
#include "keytester.h"
#include "logging.h"

#include <QDateTime>
#include <QTimerEvent>

namespace keyrelay {

namespace {
constexpr qint64 MaxTimerMs = 24LL * 3600 * 1000; ///< far-away re-checks: wake once a day and look again
}

KeyHealthMonitor::KeyHealthMonitor(KeyPool *keys, KeyTester *tester, QObject *parent)
    : QObject(parent), m_keys(keys), m_tester(tester)
{
    // Queued: the pool's signals come from whichever thread booked a result.
    connect(m_keys, &KeyPool::recheckScheduleChanged, this, &KeyHealthMonitor::reschedule,
            Qt::QueuedConnection);
    connect(m_keys, &KeyPool::keysChanged, this, &KeyHealthMonitor::reschedule, Qt::QueuedConnection);
    connect(m_tester, &KeyTester::finished, this,
            [this](quint64 ticket, KeyTester::Outcome outcome, const QString &message) {
                onTestFinished(ticket, int(outcome), message);
            });
    reschedule();
}

void KeyHealthMonitor::reschedule()
{
    const QDateTime next = m_keys->nextRecheckAt();
    if (!next.isValid()) {
        m_timer.stop();
        return;
    }
    const qint64 waitMs = qBound<qint64>(0, QDateTime::currentDateTimeUtc().msecsTo(next), MaxTimerMs);
    // A precise timer: the checks are rare, and tests and users expect them on time.
    m_timer.start(int(waitMs), Qt::PreciseTimer, this);
}

void KeyHealthMonitor::timerEvent(QTimerEvent *event)
{
    if (event->timerId() != m_timer.timerId())
        return QObject::timerEvent(event);
    m_timer.stop();
    runDueChecks();
    reschedule();
}

void KeyHealthMonitor::runDueChecks()
{
    const QList<KeyLease> due = m_keys->takeDueRechecks();
    for (const KeyLease &lease : due) {
        if (std::find(m_inFlight.cbegin(), m_inFlight.cend(), lease.keyId) != m_inFlight.cend())
            continue; // the previous check of this key has not answered yet
        qCInfo(lcKeys).noquote() << "checking key" << lease.label << "(GET of the model list, no tokens)";
        m_inFlight.insert(m_tester->test(lease.secret), lease.keyId);
    }
}

void KeyHealthMonitor::onTestFinished(quint64 ticket, int outcome, const QString &message)
{
    const QString keyId = m_inFlight.take(ticket);
    if (keyId.isEmpty())
        return; // not one of ours
    switch (KeyTester::Outcome(outcome)) {
    case KeyTester::Outcome::Ok:
        m_keys->report(keyId, QString(), KeyVerdict::Success, -1, QString()); // logs "works again"
        break;
    case KeyTester::Outcome::InvalidKey:
        m_keys->report(keyId, QString(), KeyVerdict::Invalid, -1, QStringLiteral("model list: ") + message);
        break;
    case KeyTester::Outcome::NoNetwork:
    case KeyTester::Outcome::UpstreamError:
        // Says nothing about the key; the next re-check is already booked.
        qCInfo(lcKeys).noquote() << "re-check of a key did not get an answer:" << message;
        break;
    }
    Q_EMIT recheckFinished(keyId, KeyTester::Outcome(outcome) == KeyTester::Outcome::Ok, message);
}

} // namespace keyrelay
