// GET /v1/models with several providers: one list, the union of every enabled provider's own model list
// (fetched with one of its keys, no tokens spent) and its configured names and aliases, in OpenAI's shape.
#pragma once

#include "httprequestparser.h"

#include <QHash>
#include <QMutex>
#include <QObject>
#include <QPointer>
#include <QStringList>

#include <memory>

namespace keyrelay {

class ResponseSink;
class SecretRedactor;
class UpstreamCall;
class UpstreamClient;
struct ProviderDirectory;

/// The model lists providers returned, by provider id. Thread-safe; shared by every proxy thread, read by
/// the routing ("a model exactly one provider lists").
class ModelListing
{
public:
    void set(const QString &providerId, const QStringList &models);
    QHash<QString, QStringList> all() const;

private:
    mutable QMutex m_mutex;
    QHash<QString, QStringList> m_lists;
};

/// One GET /v1/models answered from every enabled provider. Deletes itself once it answered.
class ModelListRequest : public QObject
{
    Q_OBJECT
public:
    /// The largest model list read from one provider.
    static constexpr qint64 MaxListBytes = 4 * 1024 * 1024;

    /// @p client may be null: the lists are only fetched (a refresh), nothing is answered.
    /// @p clientKey: used for providers without keys of their own (pass-through), may be empty.
    ModelListRequest(ResponseSink *client, HeaderList corsHeaders,
                     std::shared_ptr<const ProviderDirectory> providers, UpstreamClient *upstream,
                     QByteArray extraCaPem, int connectTimeoutSec, const QString &clientKey,
                     const SecretRedactor *redactor, QObject *parent = nullptr);
    ~ModelListRequest() override;

    /// Fetches only these providers' lists (the rest of the answer comes from the settings).
    void setOnly(const QStringList &providerIds) { m_only = providerIds; }
    void start();

    /// The ids of an OpenAI- or Anthropic-shaped model list ({"data":[{"id":...}]}); empty on anything else.
    static QStringList parseModelIds(const QByteArray &body);
    /// The merged list in OpenAI's shape: each id once (the first provider in order that has it owns it).
    static QByteArray mergedList(const ProviderDirectory &providers, const QHash<QString, QStringList> &fetched);

Q_SIGNALS:
    /// The answer went out: its status, body size, and what failed on the way (for the log).
    void answered(int status, qint64 bytes, const QString &problems);

private:
    struct Fetch
    {
        QString providerId;
        QPointer<UpstreamCall> call;
        QByteArray body;
    };
    void onFetchFinished(int index);
    void answer();

    QPointer<ResponseSink> m_client;
    HeaderList m_corsHeaders;
    std::shared_ptr<const ProviderDirectory> m_providers;
    UpstreamClient *m_upstream;
    QByteArray m_extraCaPem;
    int m_connectTimeoutSec;
    QString m_clientKey;
    const SecretRedactor *m_redactor;
    QList<Fetch> m_fetches;
    int m_pending = 0;
    QHash<QString, QStringList> m_fetched;
    QStringList m_problems;
    bool m_answered = false;
    QStringList m_only;
};

} // namespace keyrelay
