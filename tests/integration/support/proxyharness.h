// The proxy under test: a KeyPool and a ProxyService (own thread) on 127.0.0.1:0.
#pragma once

#include "keypool.h"
#include "proxyconfig.h"
#include "proxyservice.h"
#include "requestrecord.h"

#include <QList>
#include <QObject>
#include <QStringList>
#include <QUrl>

#include <memory>

namespace it {

/// A config for tests: loopback, port 0, short timeouts.
inline keyrelay::ProxyConfig testConfig(const QUrl &upstream)
{
    keyrelay::ProxyConfig config;
    config.listenHost = QStringLiteral("127.0.0.1");
    config.listenPort = 0;
    config.upstream = upstream;
    config.connectTimeoutSec = 5;
    config.idleTimeoutSec = 10;
    config.shutdownGraceSec = 2;
    return config;
}

class ProxyHarness
{
public:
    explicit ProxyHarness(const QStringList &initialKeys = {})
    {
        setKeys(initialKeys);
        QObject::connect(&service, &keyrelay::ProxyService::requestFinished, &service,
                         [this](const keyrelay::RequestRecord &record) { records.append(record); });
    }

    void setKeys(const QStringList &secrets)
    {
        QList<keyrelay::ApiKey> list;
        for (const QString &secret : secrets)
            list.append({ secret, QString(), true });
        keys.setKeys(list);
    }

    bool start(const keyrelay::ProxyConfig &config, QString *error = nullptr)
    {
        return service.start(config, error);
    }

    quint16 port() const { return service.port(); }

    keyrelay::KeyPool keys; // declared first: the service's thread uses it until the service is gone
    keyrelay::ProxyService service { &keys };
    QList<keyrelay::RequestRecord> records; ///< every requestFinished, in the test thread
};

} // namespace it
