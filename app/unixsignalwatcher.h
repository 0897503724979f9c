// Turns SIGINT/SIGTERM into a Qt signal (self-pipe), so shutdown runs in the event loop.
#pragma once

#include <QObject>

class QSocketNotifier;

namespace keyrelay {

class UnixSignalWatcher : public QObject
{
    Q_OBJECT
public:
    explicit UnixSignalWatcher(QObject *parent = nullptr);
    ~UnixSignalWatcher() override;

Q_SIGNALS:
    void terminationRequested(int signalNumber);

private:
    static void handler(int signalNumber);
    static int s_fds[2];
    QSocketNotifier *m_notifier = nullptr;
};

} // namespace keyrelay
