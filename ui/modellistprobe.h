// The Providers page's Test: GET <base>/v1/models of one provider, with one of its keys, the way the key
// test asks (KeyTester's request: same client, headers per kind, network proxy and timeouts), counting
// the models in the answer.
#pragma once

#include "provider.h"
#include "proxyconfig.h"

#include <QObject>
#include <QPointer>

namespace keyrelay {

class CurlEngine;
class UpstreamTransfer;

class ModelListProbe : public QObject
{
    Q_OBJECT
public:
    explicit ModelListProbe(QObject *parent = nullptr);
    ~ModelListProbe() override;

    /// Asks @p provider for its model list with @p secret (empty: no key sent, as for a local server).
    /// Timeouts and the network proxy come from @p base ([proxy]; the provider's own proxy wins). A probe
    /// still running is abandoned (its answer is never reported).
    void start(const ProviderConfig &provider, const ProxyConfig &base, const QString &secret);
    bool isRunning() const { return !m_transfer.isNull(); }

Q_SIGNALS:
    /// @p models: the ids listed (on success); @p message: why not (safe to show: never a key).
    void finished(bool ok, const QStringList &models, const QString &message);

private:
    void onFinished();

    CurlEngine *m_engine;
    QPointer<UpstreamTransfer> m_transfer;
    QByteArray m_body;
    bool m_tooLong = false;
    ProxyConfig m_config; ///< the base with the provider's URL and proxy, for the failure's description
};

} // namespace keyrelay
