// The background re-check of invalid keys: when a key's [health] recheckInvalidSec has passed, a GET of
// the upstream's model list with that key (no tokens spent) decides whether it works again.
#pragma once

#include <QBasicTimer>
#include <QHash>
#include <QObject>

namespace keyrelay {

class KeyPool;
class KeyTester;
struct ProxyConfig;

/// Lives in the proxy thread. Sleeps (no timer) while no key is invalid.
class KeyHealthMonitor : public QObject
{
    Q_OBJECT
public:
    /// @p tester (not owned) runs the checks; the monitor takes over its finished() signal.
    KeyHealthMonitor(KeyPool *keys, KeyTester *tester, QObject *parent = nullptr);

    /// Arms the timer for the pool's next re-check (or stops it when none is due).
    void reschedule();
    int checksInFlight() const { return int(m_inFlight.size()); }

Q_SIGNALS:
    /// A re-check ended; @p works: the upstream accepted the key. For the log and tests.
    void recheckFinished(const QString &keyId, bool works, const QString &message);

protected:
    void timerEvent(QTimerEvent *event) override;

private:
    void runDueChecks();
    void onTestFinished(quint64 ticket, int outcome, const QString &message);

    KeyPool *m_keys;
    KeyTester *m_tester;
    QBasicTimer m_timer;
    QHash<quint64, QString> m_inFlight; ///< ticket -> key id
};

} // namespace keyrelay
