// One KeyRelay per user: a lock file says who runs, a local socket lets a second launch wake the first.
#pragma once

#include <QLockFile>
#include <QObject>
#include <QString>

#include <memory>

class QLocalServer;

namespace keyrelay {

class SingleInstance : public QObject
{
    Q_OBJECT
public:
    /// @p key separates independent instances (the tests, a temporary HOME); usually derived from the
    /// settings location so that each user (and each config folder) gets its own instance.
    explicit SingleInstance(const QString &key, QObject *parent = nullptr);
    ~SingleInstance() override;

    /// True when this process is the first instance (it then listens for later launches). False when
    /// another instance runs; that one has been asked to show its window.
    bool claim();
    /// After claim() returned false: whether the running instance took the request. It does not when it
    /// is `keyrelay --headless` (the service), which holds the same lock but has no window.
    bool otherInstanceAnswered() const { return m_otherAnswered; }
    /// After claim() returned false: the running instance's process id, or 0 if unknown.
    qint64 otherInstancePid() const { return m_otherPid; }

    QString lockFilePath() const { return m_lockPath; }
    QString serverName() const { return m_serverName; }

Q_SIGNALS:
    /// A later launch asked for the window.
    void activationRequested();

private:
    bool notifyRunningInstance();

    QString m_lockPath;
    QString m_serverName;
    std::unique_ptr<QLockFile> m_lock;
    QLocalServer *m_server = nullptr;
    bool m_otherAnswered = false;
    qint64 m_otherPid = 0;
};

} // namespace keyrelay
