#include "modellistprobe.h"

#include "coretext.h"
#include "curlengine.h"
#include "keytester.h"
#include "modelcatalog.h"
#include "openaierror.h"
#include "upstreamfailure.h"

namespace keyrelay {

ModelListProbe::ModelListProbe(QObject *parent) : QObject(parent), m_engine(new CurlEngine(this)) { }

ModelListProbe::~ModelListProbe()
{
    delete m_transfer.data();
}

void ModelListProbe::start(const ProviderConfig &provider, const ProxyConfig &base, const QString &secret)
{
    if (m_transfer) {
        m_transfer->disconnect(this);
        m_transfer->deleteLater();
    }
    m_body.clear();
    m_tooLong = false;
    m_config = base;
    m_config.upstream = provider.baseUrl;
    if (!provider.upstreamProxy.isEmpty())
        m_config.upstreamProxy = provider.upstreamProxy;

    UpstreamRequestSpec spec
        = KeyTester::modelListRequest(provider.baseUrl, provider.kind, secret, m_config.connectTimeoutSec);
    spec.http2 = m_config.upstreamHttp2;
    spec.totalTimeoutMs = qMax(10, m_config.connectTimeoutSec) * 1000; // a person waits for this one
    applyProxy(&spec, effectiveProxy(m_config, spec.url));
    m_transfer = m_engine->start(spec, this);
    UpstreamTransfer *transfer = m_transfer;
    connect(transfer, &UpstreamTransfer::dataAvailable, this, [this, transfer] {
        const QByteArray data = transfer->read();
        if (m_body.size() + data.size() > ModelListRequest::MaxListBytes) {
            m_tooLong = true;
            transfer->abort();
            return;
        }
        m_body += data;
    });
    connect(transfer, &UpstreamTransfer::finished, this, &ModelListProbe::onFinished);
}

void ModelListProbe::onFinished()
{
    UpstreamTransfer *transfer = m_transfer;
    if (!transfer)
        return;
    m_transfer.clear();
    transfer->deleteLater();
    if (!m_tooLong)
        m_body += transfer->read();
    const int status = transfer->status();
    if (m_tooLong) {
        Q_EMIT finished(
            false, {},
            tr("The model list is larger than %1 MB.").arg(ModelListRequest::MaxListBytes / (1024 * 1024)));
        return;
    }
    if (status == 0) {
        const QUrl url = KeyTester::modelsUrl(m_config.upstream);
        const QString message = describeUpstreamResult(transfer->result(), url, effectiveProxy(m_config, url),
                                                       m_config.connectTimeoutSec)
                                    .message;
        Q_EMIT finished(false, {}, CoreText::display(message).left(300));
        return;
    }
    if (status < 200 || status >= 300) {
        const QString upstream = parseOpenAiError(m_body).message.left(300);
        Q_EMIT finished(false, {},
                        upstream.isEmpty() ? tr("HTTP %1").arg(status)
                                           : tr("HTTP %1: %2").arg(status).arg(upstream));
        return;
    }
    const QStringList models = ModelListRequest::parseModelIds(m_body);
    if (models.isEmpty() && !m_body.contains("\"data\"")) {
        Q_EMIT finished(false, {}, tr("HTTP %1, but the answer is not a model list.").arg(status));
        return;
    }
    Q_EMIT finished(true, models, QString());
}

} // namespace keyrelay
