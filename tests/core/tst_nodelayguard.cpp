// NoDelayGuard: every TCP socket of the process ends up with TCP_NODELAY (no Nagle delay upstream).
#include "nodelayguard.h"

#include <QSignalSpy>
#include <QTcpServer>
#include <QTcpSocket>
#include <QtTest>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

using namespace keyrelay;

namespace {
int noDelayOf(qintptr fd)
{
    int value = -1;
    socklen_t length = sizeof(value);
    ::getsockopt(int(fd), IPPROTO_TCP, TCP_NODELAY, &value, &length);
    return value;
}
} // namespace

class tst_NoDelayGuard : public QObject
{
    Q_OBJECT
private Q_SLOTS:
    void setsNoDelayOnSocketsWithoutIt()
    {
        QTcpServer server;
        QVERIFY(server.listen(QHostAddress::LocalHost, 0));
        QTcpSocket client;
        client.connectToHost(QHostAddress::LocalHost, server.serverPort());
        QVERIFY(client.waitForConnected(5000));
        QVERIFY(server.waitForNewConnection(5000));
        QTcpSocket *accepted = server.nextPendingConnection();
        QCOMPARE(noDelayOf(client.socketDescriptor()), 0); // Qt's default: Nagle on
        QCOMPARE(noDelayOf(accepted->socketDescriptor()), 0);

        QVERIFY(NoDelayGuard::applyToAllSockets() >= 2);
        QVERIFY(noDelayOf(client.socketDescriptor()) != 0);
        QVERIFY(noDelayOf(accepted->socketDescriptor()) != 0);
        QCOMPARE(NoDelayGuard::applyToAllSockets(), 0); // nothing left to change
    }

    void scheduledScansAreCoalesced()
    {
        QTcpServer server;
        QVERIFY(server.listen(QHostAddress::LocalHost, 0));
        QTcpSocket client;
        client.connectToHost(QHostAddress::LocalHost, server.serverPort());
        QVERIFY(client.waitForConnected(5000));
        NoDelayGuard guard;
        guard.scheduleScan();
        guard.scheduleScan();
        QCOMPARE(noDelayOf(client.socketDescriptor()), 0); // not yet: on the next event-loop pass
        QTRY_VERIFY(noDelayOf(client.socketDescriptor()) != 0);
    }
};

QTEST_GUILESS_MAIN(tst_NoDelayGuard)
#include "tst_nodelayguard.moc"
