#include "keytester.h"

#include "headerpolicy.h"
#include "keypool.h"
#include "logging.h"
#include "openaierror.h"
#include "upstreamfailure.h"
#include "upstreampath.h"

#include "curlengine.h"

namespace keyrelay {

namespace {
constexpr qsizetype MaxKeptBody = 64 * 1024; ///< enough for any error message
}

KeyTester::KeyTester(QObject *parent) : QObject(parent), m_engine(new CurlEngine(this))
{
    setConfig(ProxyConfig());
}

KeyTester::~KeyTester()
{
    const QList<UpstreamTransfer *> transfers = m_pending.keys();
    m_pending.clear();
    qDeleteAll(transfers);
}

void KeyTester::setConfig(const ProxyConfig &config)
{
    m_config = config;
}

QUrl KeyTester::modelsUrl(const QUrl &upstream)
{
    return UpstreamPath::modelsUrl(upstream);
}

UpstreamRequestSpec KeyTester::modelListRequest(const QUrl &base, ProviderKind kind, const QString &secret,
                                                int connectTimeoutSec)
{
    UpstreamRequestSpec spec;
    spec.url = modelsUrl(base);
    spec.headers = { { "Accept", "application/json" } };
    HeaderPolicy::addProviderCredential(&spec.headers, kind, secret.toUtf8());
    spec.connectTimeoutMs = qMax(1, connectTimeoutSec) * 1000;
    spec.totalTimeoutMs = qMax(5, connectTimeoutSec) * 1000;
    return spec;
}

quint64 KeyTester::test(const QString &secret)
{
    UpstreamRequestSpec spec = modelListRequest(m_config.upstream, m_kind, secret, m_config.connectTimeoutSec);
    spec.http2 = m_config.upstreamHttp2;
    applyProxy(&spec, effectiveProxy(m_config, spec.url));
    spec.extraCaCertificatesPem = m_extraCaPem;
    const quint64 ticket = m_nextTicket++;
    UpstreamTransfer *transfer = m_engine->start(spec, this);
    m_pending.insert(transfer, { ticket, QByteArray() });
    connect(transfer, &UpstreamTransfer::dataAvailable, this, [this, transfer] {
        const auto it = m_pending.find(transfer);
        const QByteArray data = transfer->read();
        if (it != m_pending.end() && it->body.size() < MaxKeptBody)
            it->body += data.left(MaxKeptBody - it->body.size());
    });
    connect(transfer, &UpstreamTransfer::finished, this, [this, transfer] { onFinished(transfer); });
    return ticket;
}

void KeyTester::onFinished(UpstreamTransfer *transfer)
{
    transfer->deleteLater();
    const auto it = m_pending.find(transfer);
    if (it == m_pending.end())
        return;
    const quint64 ticket = it->ticket;
    const QByteArray body = it->body + transfer->read().left(MaxKeptBody);
    m_pending.erase(it);

    const int status = transfer->status();
    const QString upstreamMessage = parseOpenAiError(body).message;
    Outcome outcome = Outcome::UpstreamError;
    QString message;
    if (status == 0) { // no HTTP answer at all
        outcome = Outcome::NoNetwork;
        const QUrl url = modelsUrl(m_config.upstream);
        message = describeUpstreamResult(transfer->result(), url, effectiveProxy(m_config, url),
                                         m_config.connectTimeoutSec)
                      .message;
    } else if (status >= 200 && status < 300) {
        outcome = Outcome::Ok;
    } else if (KeyPool::classify(status, body).verdict == KeyVerdict::Invalid) {
        outcome = Outcome::InvalidKey;
        message = upstreamMessage.isEmpty() ? tr("HTTP %1").arg(status) : upstreamMessage;
    } else {
        message = upstreamMessage.isEmpty() ? tr("HTTP %1").arg(status)
                                            : tr("HTTP %1: %2").arg(status).arg(upstreamMessage);
    }
    qCDebug(lcKeys) << "key test" << ticket << "finished with HTTP" << status;
    Q_EMIT finished(ticket, outcome, message.left(300));
}

} // namespace keyrelay
