// A set of QNetworkAccessManagers so that many concurrent requests to one upstream host do not queue.
#pragma once

#include "nodelayguard.h"

#include <QNetworkProxy>
#include <QObject>

#include <vector>

class QNetworkAccessManager;

namespace keyrelay {

/// One QNetworkAccessManager keeps at most 6 HTTP/1.1 connections per host and queues the rest, which
/// would serialize long streams. The pool hands out the least-loaded manager and adds managers while
/// every existing one has 6 or more requests in flight, up to a cap.
class UpstreamPool : public QObject
{
    Q_OBJECT
public:
    static constexpr int ConnectionsPerManager = 6;

    explicit UpstreamPool(int maxManagers = 128, QObject *parent = nullptr);
    ~UpstreamPool() override;

    /// Applies to managers created from now on and to the existing ones.
    void setProxy(const QNetworkProxy &proxy, bool useSystemProxy);

    /// Caps the number of managers (existing ones beyond the cap stay until the pool goes).
    void setMaxManagers(int maxManagers) { m_maxManagers = qMax(1, maxManagers); }
    int maxManagers() const { return m_maxManagers; }

    QNetworkAccessManager *acquire();
    void release(QNetworkAccessManager *manager);

    int managerCount() const { return int(m_slots.size()); }
    /// Call when a reply starts a connection: its socket gets TCP_NODELAY (see NoDelayGuard).
    void onConnectionStarting() { m_noDelay.scheduleScan(); }
    int inFlight() const;
    /// A reply of @p manager failed its TLS handshake. Qt 6.4 keeps ~7 KB per failed handshake in
    /// the manager's connection cache; it is cleared as soon as no request of that manager is in
    /// flight (clearing earlier would stop the others).
    void onTlsFailure(QNetworkAccessManager *manager);

private:
    struct Slot
    {
        QNetworkAccessManager *manager = nullptr;
        int inFlight = 0;
        bool clearWhenIdle = false; ///< a TLS handshake failed on it: clear its cache once idle
    };
    QNetworkAccessManager *createManager();
    void clearCacheIfIdle(QNetworkAccessManager *manager);
    void configure(QNetworkAccessManager *manager) const;

    std::vector<Slot> m_slots;
    NoDelayGuard m_noDelay;
    int m_maxManagers;
    QNetworkProxy m_proxy { QNetworkProxy::NoProxy };
    bool m_useSystemProxy = false;
    int m_cacheClears = 0;

public:
    /// How often a manager's connection cache was cleared after TLS failures (for tests).
    int cacheClears() const { return m_cacheClears; }
};

} // namespace keyrelay
