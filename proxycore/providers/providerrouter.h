// Which provider serves a request, decided once before any upstream byte: first the protocol (an
// Anthropic path goes to anthropic-kind providers only), then the model — "provider/model", an alias, a
// model exactly one provider lists, the most specific pattern, else the first provider of the kind —
// and after it the chosen provider's fallbacks.
#pragma once

#include "provider.h"

#include <QByteArray>
#include <QHash>
#include <QList>
#include <QString>

namespace keyrelay {

/// One provider to try for a request, with the model name it gets.
struct RouteStep
{
    int provider = -1; ///< index into the router's providers
    QString model; ///< the model name to forward; equal to the client's when nothing was rewritten
};

struct ProviderRoute
{
    QList<RouteStep> steps; ///< the chosen provider, then its fallbacks; empty on error
    QByteArray target; ///< the request target without a "/p/<id>" prefix
    QString reason; ///< why the first step was chosen, for the debug log ("alias", "pattern gpt-*"...)
    int errorStatus = 0; ///< when no provider can serve the request: 404
    QString errorCode; ///< "unknown_provider", "provider_disabled", "no_provider"
    QString error; ///< for the client
    bool ok() const { return !steps.isEmpty(); }
};

class ProviderRouter
{
public:
    /// @p anyPath: every path goes to the providers whatever their kind (the single provider "default" of
    /// a configuration without [providers] serves every path, as before providers existed).
    explicit ProviderRouter(QList<ProviderConfig> providers = {}, bool anyPath = false);

    const QList<ProviderConfig> &providers() const { return m_providers; }
    /// The model names a provider's own model list returned (an exact listing routes a model there).
    void setListedModels(const QString &providerId, const QStringList &models);
    QStringList listedModels(const QString &providerId) const { return m_listed.value(providerId); }

    /// Routes a request by its target (path and query, as on the request line) and the "model" of its
    /// body ("" when it has none).
    /// @p listed, when given, replaces setListedModels() (the lists fetched so far, see ModelListing).
    ProviderRoute route(const QByteArray &target, const QString &model,
                        const QHash<QString, QStringList> *listed = nullptr) const;

    /// Anthropic's Messages API: /v1/messages, /v1/messages/count_tokens... (also without "/v1").
    static bool isAnthropicPath(const QByteArray &path);

private:
    QList<ProviderConfig> m_providers;
    bool m_anyPath = false;
    QHash<QString, QStringList> m_listed;
};

} // namespace keyrelay
