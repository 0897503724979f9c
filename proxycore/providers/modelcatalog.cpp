#include "modelcatalog.h"

#include "keypool.h"
#include "keytester.h"
#include "logging.h"
#include "proxyexchange.h"
#include "responsesink.h"
#include "secretredactor.h"
#include "upstreamcall.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSet>

namespace keyrelay {

void ModelListing::set(const QString &providerId, const QStringList &models)
{
    QMutexLocker lock(&m_mutex);
    m_lists.insert(providerId, models);
}

QHash<QString, QStringList> ModelListing::all() const
{
    QMutexLocker lock(&m_mutex);
    return m_lists;
}

ModelListRequest::ModelListRequest(ResponseSink *client, HeaderList corsHeaders,
                                   std::shared_ptr<const ProviderDirectory> providers, UpstreamClient *upstream,
                                   QByteArray extraCaPem, int connectTimeoutSec, const QString &clientKey,
                                   const SecretRedactor *redactor, QObject *parent)
    : QObject(parent), m_client(client), m_corsHeaders(std::move(corsHeaders)), m_providers(std::move(providers)),
      m_upstream(upstream), m_extraCaPem(std::move(extraCaPem)), m_connectTimeoutSec(connectTimeoutSec),
      m_clientKey(clientKey), m_redactor(redactor)
{
    if (client) {
        connect(client, &ResponseSink::clientGone, this, [this] {
            m_answered = true;
            deleteLater();
        });
    }
}

ModelListRequest::~ModelListRequest()
{
    for (Fetch &fetch : m_fetches) {
        if (fetch.call) {
            fetch.call->disconnect(this);
            fetch.call->abort();
        }
    }
}

void ModelListRequest::start()
{
    for (const ProviderEndpoint &endpoint : m_providers->endpoints) {
        if (!endpoint.config.enabled || (!m_only.isEmpty() && !m_only.contains(endpoint.config.id)))
            continue;
        // One of the provider's enabled keys, else the client's own (a provider without keys).
        QString secret;
        const QList<ApiKey> keys = endpoint.keys->keys();
        for (const ApiKey &key : keys) {
            if (key.enabled) {
                secret = key.secret;
                break;
            }
        }
        if (secret.isEmpty())
            secret = m_clientKey;
        UpstreamRequestSpec spec = KeyTester::modelListRequest(endpoint.config.baseUrl, endpoint.config.kind,
                                                               secret, m_connectTimeoutSec);
        spec.extraCaCertificatesPem = m_extraCaPem;
        spec.bufferLimit = MaxListBytes;
        if (endpoint.proxy)
            applyProxy(&spec, *endpoint.proxy);
        Fetch fetch;
        fetch.providerId = endpoint.config.id;
        fetch.call = m_upstream->startCall(spec, this);
        const int index = int(m_fetches.size());
        connect(fetch.call, &UpstreamCall::dataAvailable, this, [this, index] {
            Fetch &f = m_fetches[index];
            const QByteArray data = f.call->read();
            if (f.body.size() + data.size() <= MaxListBytes)
                f.body += data;
        });
        connect(fetch.call, &UpstreamCall::finished, this, [this, index] { onFetchFinished(index); });
        m_fetches.append(fetch);
        ++m_pending;
    }
    if (m_pending == 0)
        answer();
}

void ModelListRequest::onFetchFinished(int index)
{
    Fetch &fetch = m_fetches[index];
    if (!fetch.call)
        return;
    UpstreamCall *call = fetch.call;
    fetch.body += call->read().left(MaxListBytes - fetch.body.size());
    const int status = call->status();
    if (call->result().ok() && status >= 200 && status < 300) {
        m_fetched.insert(fetch.providerId, parseModelIds(fetch.body));
    } else {
        m_problems.append(QStringLiteral("%1: %2").arg(
            fetch.providerId, status > 0 ? QStringLiteral("HTTP %1").arg(status) : call->result().message));
    }
    fetch.call = nullptr;
    call->deleteLater();
    if (--m_pending == 0)
        answer();
}

void ModelListRequest::answer()
{
    if (m_answered)
        return;
    m_answered = true;
    for (auto it = m_fetched.cbegin(); it != m_fetched.cend(); ++it)
        m_providers->listing->set(it.key(), it.value());
    const QByteArray body = mergedList(*m_providers, m_fetched);
    if (!m_problems.isEmpty())
        qCInfo(lcForward).noquote() << "GET /v1/models - providers whose model list failed:"
                                    << m_redactor->redact(m_problems.join(QLatin1String("; ")));
    if (m_client) {
        HeaderList headers = m_corsHeaders;
        headers.prepend({ "Content-Type", "application/json" });
        m_client->sendResponse(200, headers, body);
    }
    Q_EMIT answered(200, body.size(), m_redactor->redact(m_problems.join(QLatin1String("; "))));
    deleteLater();
}

QStringList ModelListRequest::parseModelIds(const QByteArray &body)
{
    QStringList ids;
    const QJsonValue data = QJsonDocument::fromJson(body).object().value(QLatin1String("data"));
    if (!data.isArray())
        return ids;
    const QJsonArray entries = data.toArray();
    for (const QJsonValue &entry : entries) {
        const QString id = entry.toObject().value(QLatin1String("id")).toString();
        if (!id.isEmpty() && !ids.contains(id))
            ids.append(id);
    }
    return ids;
}

QByteArray ModelListRequest::mergedList(const ProviderDirectory &providers,
                                        const QHash<QString, QStringList> &fetched)
{
    QJsonArray data;
    QSet<QString> seen;
    const auto add = [&](const QString &id, const QString &owner) {
        if (id.isEmpty() || seen.contains(id))
            return;
        seen.insert(id);
        QJsonObject model;
        model.insert(QLatin1String("id"), id);
        model.insert(QLatin1String("object"), QLatin1String("model"));
        model.insert(QLatin1String("created"), 0);
        model.insert(QLatin1String("owned_by"), owner);
        data.append(model);
    };
    for (const ProviderEndpoint &endpoint : providers.endpoints) {
        if (!endpoint.config.enabled)
            continue;
        const QString &id = endpoint.config.id;
        for (const QString &model : fetched.value(id))
            add(model, id);
        for (const QString &model : endpoint.config.models) {
            if (!model.contains(QLatin1Char('*')))
                add(model, id);
        }
        for (const ModelAlias &alias : endpoint.config.aliases)
            add(alias.alias, id);
    }
    QJsonObject root;
    root.insert(QLatin1String("object"), QLatin1String("list"));
    root.insert(QLatin1String("data"), data);
    return QJsonDocument(root).toJson(QJsonDocument::Compact);
}

} // namespace keyrelay
