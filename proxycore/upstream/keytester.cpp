#include "keytester.h"

#include "keypool.h"
#include "logging.h"
#include "openaierror.h"
#include "upstreamfailure.h"
#include "upstreampath.h"

#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>

namespace keyrelay {

KeyTester::KeyTester(QObject *parent) : QObject(parent), m_manager(new QNetworkAccessManager(this))
{
    connect(m_manager, &QNetworkAccessManager::finished, this, &KeyTester::onFinished);
#ifndef QT_NO_SSL
    connect(
        m_manager, &QNetworkAccessManager::sslErrors, this,
        [this](QNetworkReply *reply, const QList<QSslError> &errors) { m_sslErrors.insert(reply, errors); });
#endif
    setConfig(ProxyConfig());
}

KeyTester::~KeyTester()
{
    const QList<QNetworkReply *> replies = m_pending.keys();
    m_pending.clear();
    for (QNetworkReply *reply : replies)
        reply->abort();
}

void KeyTester::setConfig(const ProxyConfig &config)
{
    m_config = config;
    m_manager->setProxy(effectiveProxy(config, modelsUrl(config.upstream)));
}

QUrl KeyTester::modelsUrl(const QUrl &upstream)
{
    return UpstreamPath::modelsUrl(upstream);
}

quint64 KeyTester::test(const QString &secret)
{
    QNetworkRequest request(modelsUrl(m_config.upstream));
    request.setRawHeader("Authorization", "Bearer " + secret.toUtf8());
    request.setRawHeader("Accept", "application/json");
    request.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    request.setTransferTimeout(qMax(5, m_config.connectTimeoutSec) * 1000);
    const quint64 ticket = m_nextTicket++;
    QNetworkReply *reply = m_manager->get(request);
    m_pending.insert(reply, ticket);
    return ticket;
}

void KeyTester::onFinished(QNetworkReply *reply)
{
    reply->deleteLater();
    const auto it = m_pending.find(reply);
    if (it == m_pending.end())
        return;
    const quint64 ticket = it.value();
    m_pending.erase(it);
#ifndef QT_NO_SSL
    m_sslErrors.remove(reply);
#endif

    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    const QByteArray body = reply->readAll();
    const QString upstreamMessage = parseOpenAiError(body).message;
    Outcome outcome = Outcome::UpstreamError;
    QString message;
    if (status == 0) {
        outcome = Outcome::NoNetwork;
#ifndef QT_NO_SSL
        message = describeNetworkFailure(reply, m_config, m_sslErrors.value(reply)).message;
#else
        message = describeNetworkFailure(reply, m_config).message;
#endif
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
