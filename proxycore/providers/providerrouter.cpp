#include "providerrouter.h"

namespace keyrelay {

namespace {

QByteArray pathOf(const QByteArray &target)
{
    const qsizetype query = target.indexOf('?');
    return query < 0 ? target : target.left(query);
}

bool underPath(const QByteArray &path, const QByteArray &prefix)
{
    return path == prefix || (path.startsWith(prefix) && path.at(prefix.size()) == '/');
}

} // namespace

ProviderRouter::ProviderRouter(QList<ProviderConfig> providers, bool anyPath)
    : m_providers(std::move(providers)), m_anyPath(anyPath)
{
}

void ProviderRouter::setListedModels(const QString &providerId, const QStringList &models)
{
    m_listed.insert(providerId, models);
}

bool ProviderRouter::isAnthropicPath(const QByteArray &path)
{
    const QByteArray plain = pathOf(path);
    return underPath(plain, "/v1/messages") || underPath(plain, "/messages");
}

ProviderRoute ProviderRouter::route(const QByteArray &target, const QString &model,
                                    const QHash<QString, QStringList> *listed) const
{
    const QHash<QString, QStringList> &lists = listed ? *listed : m_listed;
    ProviderRoute route;
    route.target = target;

    // The path form /p/<id>/...: the client chose the provider.
    int chosen = -1;
    QString forwarded = model;
    if (target.startsWith("/p/")) {
        const qsizetype slash = target.indexOf('/', 3);
        const qsizetype query = target.indexOf('?', 3);
        qsizetype end = slash < 0 ? target.size() : slash;
        if (query >= 0 && query < end)
            end = query;
        const QString id = QString::fromUtf8(target.mid(3, end - 3));
        for (int i = 0; i < m_providers.size(); ++i) {
            if (m_providers.at(i).id == id)
                chosen = i;
        }
        if (chosen < 0) {
            route.errorStatus = 404;
            route.errorCode = QStringLiteral("unknown_provider");
            route.error = QStringLiteral("KeyRelay has no provider \"%1\" (see /p/<provider>/ in its settings)").arg(id);
            return route;
        }
        if (!m_providers.at(chosen).enabled) {
            route.errorStatus = 404;
            route.errorCode = QStringLiteral("provider_disabled");
            route.error = QStringLiteral("KeyRelay's provider \"%1\" is disabled").arg(id);
            return route;
        }
        route.target = target.mid(end);
        if (route.target.isEmpty() || route.target.startsWith('?'))
            route.target.prepend('/');
        route.reason = QStringLiteral("path /p/%1").arg(id);
        forwarded = m_providers.at(chosen).resolveAlias(model);
    }

    const ProviderKind kind = isAnthropicPath(route.target) ? ProviderKind::Anthropic : ProviderKind::OpenAi;
    const auto candidate = [&](int i) {
        const ProviderConfig &provider = m_providers.at(i);
        return provider.enabled && (m_anyPath || provider.kind == kind);
    };

    // "provider/model": the prefix names a provider of this kind.
    if (chosen < 0 && !model.isEmpty()) {
        const qsizetype slash = model.indexOf(QLatin1Char('/'));
        if (slash > 0) {
            const QString id = model.left(slash);
            for (int i = 0; i < m_providers.size() && chosen < 0; ++i) {
                if (candidate(i) && m_providers.at(i).id == id) {
                    chosen = i;
                    forwarded = m_providers.at(i).resolveAlias(model.mid(slash + 1));
                    route.reason = QStringLiteral("prefix %1/").arg(id);
                }
            }
        }
    }
    // An alias.
    if (chosen < 0 && !model.isEmpty()) {
        for (int i = 0; i < m_providers.size() && chosen < 0; ++i) {
            if (!candidate(i))
                continue;
            for (const ModelAlias &alias : m_providers.at(i).aliases) {
                if (alias.alias == model) {
                    chosen = i;
                    forwarded = alias.model;
                    route.reason = QStringLiteral("alias %1").arg(model);
                    break;
                }
            }
        }
    }
    // A model exactly one provider lists (its own model list, or a configured name without "*").
    if (chosen < 0 && !model.isEmpty()) {
        int listing = -1;
        int listings = 0;
        for (int i = 0; i < m_providers.size(); ++i) {
            if (!candidate(i))
                continue;
            const ProviderConfig &provider = m_providers.at(i);
            if (lists.value(provider.id).contains(model) || provider.models.contains(model)) {
                listing = i;
                ++listings;
            }
        }
        if (listings == 1) {
            chosen = listing;
            route.reason = QStringLiteral("listed");
        }
    }
    // The most specific pattern; equal ones by provider order.
    if (chosen < 0 && !model.isEmpty()) {
        int best = -1;
        for (int i = 0; i < m_providers.size(); ++i) {
            if (!candidate(i))
                continue;
            for (const QString &pattern : m_providers.at(i).models) {
                if (!ProviderConfig::patternMatches(pattern, model))
                    continue;
                const int specificity = ProviderConfig::patternSpecificity(pattern);
                if (specificity > best) {
                    best = specificity;
                    chosen = i;
                    route.reason = QStringLiteral("pattern %1").arg(pattern);
                }
            }
        }
    }
    // The default: the first provider of the kind.
    if (chosen < 0) {
        for (int i = 0; i < m_providers.size() && chosen < 0; ++i) {
            if (candidate(i)) {
                chosen = i;
                route.reason = QStringLiteral("default");
            }
        }
    }
    if (chosen < 0) {
        route.errorStatus = 404;
        route.errorCode = QStringLiteral("no_provider");
        route.error = kind == ProviderKind::Anthropic
            ? QStringLiteral("KeyRelay has no enabled provider of kind anthropic for the Messages API")
            : QStringLiteral("KeyRelay has no enabled provider of kind openai for this path");
        return route;
    }

    route.steps.append({ chosen, forwarded });
    // Fallbacks get the client's model (without a provider prefix) unless their own aliases map it.
    const QString requested = [&] {
        const qsizetype slash = model.indexOf(QLatin1Char('/'));
        if (slash > 0 && m_providers.at(chosen).id == model.left(slash))
            return model.mid(slash + 1);
        return model;
    }();
    for (const QString &id : m_providers.at(chosen).fallback) {
        for (int i = 0; i < m_providers.size(); ++i) {
            const ProviderConfig &provider = m_providers.at(i);
            if (provider.id != id || !provider.enabled
                || (!m_anyPath && provider.kind != m_providers.at(chosen).kind))
                continue;
            const bool already = std::any_of(route.steps.cbegin(), route.steps.cend(),
                                             [i](const RouteStep &step) { return step.provider == i; });
            if (!already)
                route.steps.append({ i, provider.resolveAlias(requested) });
        }
    }
    return route;
}

} // namespace keyrelay
