// Turns Nagle's algorithm off on QNetworkAccessManager's upstream sockets.
//
// Qt 6.4 writes an HTTP/2 request's HEADERS and DATA frames, and an HTTP/1.1 request's head and a body
// over 16 KiB, in separate writes on sockets without TCP_NODELAY, and offers no API to set it: each
// such request then waits for the server's delayed ACK (~40 ms). This guard sets TCP_NODELAY on every
// TCP socket of the process that lacks it, once per event-loop pass after a connection starts.
#pragma once

#include <QObject>

namespace keyrelay {

class NoDelayGuard : public QObject
{
    Q_OBJECT
public:
    explicit NoDelayGuard(QObject *parent = nullptr);

    /// Schedules one scan on the next event-loop pass (calls in the same pass share it).
    void scheduleScan();
    /// Scans now; returns how many sockets got TCP_NODELAY. Linux only (elsewhere it does nothing).
    static int applyToAllSockets();

private:
    bool m_scanPending = false;
};

} // namespace keyrelay
