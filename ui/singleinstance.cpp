#include "singleinstance.h"

#include "uilogging.h"
#include "userconfig.h"

#include <QLocalServer>
#include <QLocalSocket>

namespace keyrelay {

namespace {
constexpr char ActivateMessage[] = "activate\n";
}

SingleInstance::SingleInstance(const QString &key, QObject *parent)
    : QObject(parent), m_lockPath(userconfig::instanceLockPath(key)),
      m_serverName(userconfig::instanceServerName(key))
{
}

SingleInstance::~SingleInstance()
{
    if (m_server)
        m_server->close();
}

bool SingleInstance::claim()
{
    m_lock = std::make_unique<QLockFile>(m_lockPath);
    m_lock->setStaleLockTime(0); // only a dead process's lock is stale
    if (!m_lock->tryLock(100)) {
        qCInfo(lcInstance) << "KeyRelay already runs; asking it to show its window";
        m_otherAnswered = notifyRunningInstance();
        qint64 pid = 0;
        QString hostName;
        QString appName;
        if (m_lock->getLockInfo(&pid, &hostName, &appName))
            m_otherPid = pid;
        m_lock.reset();
        return false;
    }
    m_server = new QLocalServer(this);
    m_server->setSocketOptions(QLocalServer::UserAccessOption);
    QLocalServer::removeServer(m_serverName); // left behind by a crash; we hold the lock
    if (!m_server->listen(m_serverName)) {
        qCWarning(lcInstance) << "cannot listen for other launches:" << m_server->errorString();
        return true;
    }
    connect(m_server, &QLocalServer::newConnection, this, [this] {
        while (QLocalSocket *socket = m_server->nextPendingConnection()) {
            connect(socket, &QLocalSocket::disconnected, socket, &QObject::deleteLater);
            connect(socket, &QLocalSocket::readyRead, this, [this, socket] {
                if (socket->readAll().contains("activate"))
                    Q_EMIT activationRequested();
                socket->disconnectFromServer();
            });
        }
    });
    return true;
}

bool SingleInstance::notifyRunningInstance()
{
    QLocalSocket socket;
    socket.connectToServer(m_serverName);
    // Start-up of a process that is about to exit: a short blocking wait is fine here.
    if (!socket.waitForConnected(2000)) {
        qCWarning(lcInstance) << "the running instance does not answer:" << socket.errorString();
        return false;
    }
    socket.write(ActivateMessage);
    socket.waitForBytesWritten(2000);
    socket.disconnectFromServer();
    if (socket.state() != QLocalSocket::UnconnectedState)
        socket.waitForDisconnected(500);
    return true;
}

} // namespace keyrelay
