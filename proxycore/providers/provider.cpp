#include "provider.h"

#include "proxyconfig.h"

#include <QHash>
#include <QRegularExpression>
#include <QSet>
#include <QSettings>

namespace keyrelay {

namespace {

constexpr int MaxProviders = 64;

QString groupOf(const QString &id)
{
    return QStringLiteral("provider.") + id;
}

bool readBool(const QVariant &value, bool fallback, bool *ok)
{
    const QString text = value.toString().trimmed().toLower();
    *ok = true;
    if (text == QLatin1String("true") || text == QLatin1String("1") || text == QLatin1String("yes")
        || text == QLatin1String("on"))
        return true;
    if (text == QLatin1String("false") || text == QLatin1String("0") || text == QLatin1String("no")
        || text == QLatin1String("off"))
        return false;
    *ok = false;
    return fallback;
}

/// A single value (a URL, a path) that QSettings split at its commas because it was not quoted, joined
/// back as it was written.
QString exactTextOf(const QVariant &value)
{
    if (value.typeId() == QMetaType::QStringList)
        return value.toStringList().join(QLatin1Char(','));
    return value.toString();
}

/// A value that QSettings may have split at commas (an unquoted list in an INI file) as one text.
QString textOf(const QVariant &value)
{
    if (value.typeId() == QMetaType::QStringList)
        return value.toStringList().join(QLatin1String(", "));
    return value.toString();
}

} // namespace

QString ProviderConfig::resolveAlias(const QString &model) const
{
    for (const ModelAlias &alias : aliases) {
        if (alias.alias == model)
            return alias.model;
    }
    return model;
}

bool ProviderConfig::operator==(const ProviderConfig &other) const
{
    return id == other.id && name == other.name && kind == other.kind && baseUrl == other.baseUrl
        && models == other.models && aliases == other.aliases && fallback == other.fallback
        && upstreamProxy == other.upstreamProxy && enabled == other.enabled && keysFile == other.keysFile;
}

QString ProviderConfig::kindName(ProviderKind kind)
{
    return kind == ProviderKind::Anthropic ? QStringLiteral("anthropic") : QStringLiteral("openai");
}

bool ProviderConfig::parseKind(const QString &text, ProviderKind *kind)
{
    const QString value = text.trimmed().toLower();
    if (value.isEmpty() || value == QLatin1String("openai")) {
        *kind = ProviderKind::OpenAi;
        return true;
    }
    if (value == QLatin1String("anthropic")) {
        *kind = ProviderKind::Anthropic;
        return true;
    }
    return false;
}

bool ProviderConfig::isValidId(const QString &id)
{
    static const QRegularExpression pattern(QStringLiteral("^[a-z0-9][a-z0-9_-]{0,39}$"));
    return pattern.match(id).hasMatch() && id != QLatin1String("p");
}

bool ProviderConfig::parseAliases(const QString &text, QList<ModelAlias> *aliases, QString *error)
{
    QList<ModelAlias> result;
    for (const QString &entry : parseList(text)) {
        const qsizetype equals = entry.indexOf(QLatin1Char('='));
        const QString alias = entry.left(equals).trimmed();
        const QString model = equals < 0 ? QString() : entry.mid(equals + 1).trimmed();
        if (equals < 0 || alias.isEmpty() || model.isEmpty()) {
            *error = QStringLiteral("alias \"%1\" is not NAME=MODEL").arg(entry);
            return false;
        }
        if (std::any_of(result.cbegin(), result.cend(), [&](const ModelAlias &a) { return a.alias == alias; })) {
            *error = QStringLiteral("alias \"%1\" is given twice").arg(alias);
            return false;
        }
        result.append({ alias, model });
    }
    *aliases = result;
    return true;
}

QString ProviderConfig::aliasesText(const QList<ModelAlias> &aliases)
{
    QStringList parts;
    for (const ModelAlias &alias : aliases)
        parts.append(alias.alias + QLatin1Char('=') + alias.model);
    return parts.join(QLatin1String(", "));
}

QStringList ProviderConfig::parseList(const QString &text)
{
    QStringList result;
    for (const QString &part : text.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        const QString trimmed = part.trimmed();
        if (!trimmed.isEmpty() && !result.contains(trimmed))
            result.append(trimmed);
    }
    return result;
}

bool ProviderConfig::patternMatches(const QString &pattern, const QString &model)
{
    // Iterative glob with backtracking to the last '*': linear in practice, no recursion.
    qsizetype p = 0;
    qsizetype m = 0;
    qsizetype star = -1;
    qsizetype resume = 0;
    while (m < model.size()) {
        if (p < pattern.size() && pattern.at(p) == QLatin1Char('*')) {
            star = p++;
            resume = m;
        } else if (p < pattern.size() && pattern.at(p) == model.at(m)) {
            ++p;
            ++m;
        } else if (star >= 0) {
            p = star + 1;
            m = ++resume;
        } else {
            return false;
        }
    }
    while (p < pattern.size() && pattern.at(p) == QLatin1Char('*'))
        ++p;
    return p == pattern.size();
}

int ProviderConfig::patternSpecificity(const QString &pattern)
{
    const qsizetype stars = pattern.count(QLatin1Char('*'));
    // An exact name counts one more than its characters, so that it beats "name*" (as many characters).
    return int(pattern.size() - stars) + (stars == 0 ? 1 : 0);
}

QList<ProviderConfig> ProviderConfig::presets()
{
    const auto preset = [](const char *presetId, const char *presetName, ProviderKind presetKind,
                           const char *url) {
        ProviderConfig config;
        config.id = QString::fromLatin1(presetId);
        config.name = QString::fromLatin1(presetName);
        config.kind = presetKind;
        config.baseUrl = QUrl(QString::fromLatin1(url));
        return config;
    };
    return {
        preset("openai", "OpenAI", ProviderKind::OpenAi, "https://api.openai.com"),
        preset("anthropic", "Anthropic", ProviderKind::Anthropic, "https://api.anthropic.com"),
        preset("deepseek", "DeepSeek", ProviderKind::OpenAi, "https://api.deepseek.com"),
        preset("openrouter", "OpenRouter", ProviderKind::OpenAi, "https://openrouter.ai/api/v1"),
        preset("groq", "Groq", ProviderKind::OpenAi, "https://api.groq.com/openai/v1"),
        preset("gemini", "Gemini (OpenAI-compatible)", ProviderKind::OpenAi,
               "https://generativelanguage.googleapis.com/v1beta/openai"),
        preset("mistral", "Mistral", ProviderKind::OpenAi, "https://api.mistral.ai/v1"),
        preset("xai", "xAI", ProviderKind::OpenAi, "https://api.x.ai/v1"),
        preset("ollama", "Ollama", ProviderKind::OpenAi, "http://127.0.0.1:11434/v1"),
        preset("lmstudio", "LM Studio", ProviderKind::OpenAi, "http://127.0.0.1:1234/v1"),
    };
}

QStringList validateProviders(const QList<ProviderConfig> &providers)
{
    QStringList problems;
    if (providers.size() > MaxProviders)
        problems.append(QStringLiteral("more than %1 providers").arg(MaxProviders));
    QSet<QString> ids;
    for (const ProviderConfig &provider : providers) {
        if (!ProviderConfig::isValidId(provider.id))
            problems.append(QStringLiteral("provider id \"%1\" must be 1-40 of a-z, 0-9, _ and -").arg(provider.id));
        if (ids.contains(provider.id))
            problems.append(QStringLiteral("provider \"%1\" is listed twice").arg(provider.id));
        ids.insert(provider.id);
        QUrl url;
        QString error;
        if (!ProxyConfig::parseUpstream(provider.baseUrl.toString(), &url, &error))
            problems.append(QStringLiteral("provider \"%1\": %2").arg(provider.id, error));
        // As readProviders() checks it: a proxy it cannot parse would otherwise be used as no proxy.
        QNetworkProxy proxy;
        bool system = false;
        if (!ProxyConfig::parseUpstreamProxy(provider.upstreamProxy, &proxy, &system, &error))
            problems.append(QStringLiteral("provider \"%1\": %2").arg(provider.id, error));
    }
    for (const ProviderConfig &provider : providers) {
        for (const QString &next : provider.fallback) {
            if (next == provider.id)
                problems.append(QStringLiteral("provider \"%1\" lists itself as fallback").arg(provider.id));
            else if (!ids.contains(next))
                problems.append(
                    QStringLiteral("provider \"%1\": fallback \"%2\" is not a provider").arg(provider.id, next));
            else if (std::any_of(providers.cbegin(), providers.cend(), [&](const ProviderConfig &other) {
                         return other.id == next && other.kind != provider.kind;
                     }))
                problems.append(QStringLiteral("provider \"%1\": fallback \"%2\" speaks the other API (%3)")
                                    .arg(provider.id, next, ProviderConfig::kindName(provider.kind)));
        }
    }
    return problems;
}

QList<ProviderConfig> readProviders(QSettings &settings, QStringList *problems)
{
    QList<ProviderConfig> result;
    const QStringList order = ProviderConfig::parseList(textOf(settings.value(QStringLiteral("providers/order"))));
    QSet<QString> known;
    for (const QString &id : order) {
        const auto problem = [&](const QString &text) {
            problems->append(QStringLiteral("[provider.%1] %2").arg(id, text));
        };
        if (!ProviderConfig::isValidId(id)) {
            problems->append(QStringLiteral("providers/order: \"%1\" is not a provider id (a-z, 0-9, _ and -)").arg(id));
            continue;
        }
        if (result.size() >= MaxProviders) {
            problems->append(QStringLiteral("providers/order: more than %1 providers; the rest are left out")
                                 .arg(MaxProviders));
            break;
        }
        settings.beginGroup(groupOf(id));
        ProviderConfig provider;
        provider.id = id;
        provider.name = textOf(settings.value(QStringLiteral("name"))).trimmed(); // "Acme, Inc." unquoted
        const QString kindText = settings.value(QStringLiteral("kind")).toString();
        const bool kindOk = ProviderConfig::parseKind(kindText, &provider.kind);
        QString urlError;
        QUrl url;
        const QString urlText = exactTextOf(settings.value(QStringLiteral("baseUrl"))).trimmed();
        const bool urlOk = ProxyConfig::parseUpstream(urlText, &url, &urlError);
        provider.baseUrl = url;
        provider.models = ProviderConfig::parseList(textOf(settings.value(QStringLiteral("models"))));
        QString aliasError;
        if (!ProviderConfig::parseAliases(textOf(settings.value(QStringLiteral("aliases"))), &provider.aliases,
                                          &aliasError))
            problem(QStringLiteral("aliases: %1; no alias is used").arg(aliasError));
        provider.fallback = ProviderConfig::parseList(textOf(settings.value(QStringLiteral("fallback"))));
        provider.upstreamProxy = exactTextOf(settings.value(QStringLiteral("upstreamProxy"))).trimmed();
        bool enabledOk = true;
        if (settings.contains(QStringLiteral("enabled")))
            provider.enabled = readBool(settings.value(QStringLiteral("enabled")), true, &enabledOk);
        provider.keysFile = exactTextOf(settings.value(QStringLiteral("keysFile"))).trimmed();
        settings.endGroup();

        if (!enabledOk)
            problem(QStringLiteral("enabled: not true or false; the provider is enabled"));
        if (!kindOk) {
            problem(QStringLiteral("kind \"%1\" is not openai or anthropic; the provider is left out").arg(kindText));
            continue;
        }
        if (!urlOk) {
            problem(QStringLiteral("baseUrl: %1; the provider is left out").arg(urlError));
            continue;
        }
        if (!provider.upstreamProxy.isEmpty()) {
            QNetworkProxy proxy;
            bool system = false;
            QString proxyError;
            if (!ProxyConfig::parseUpstreamProxy(provider.upstreamProxy, &proxy, &system, &proxyError)) {
                problem(QStringLiteral("upstreamProxy: %1; the provider is left out").arg(proxyError));
                continue;
            }
        }
        known.insert(id);
        result.append(provider);
    }
    // Fallbacks that name no usable provider, or one of the other kind (it could not take the same
    // request), are dropped (the rest of the provider still works).
    QHash<QString, ProviderKind> kinds;
    for (const ProviderConfig &provider : std::as_const(result))
        kinds.insert(provider.id, provider.kind);
    for (ProviderConfig &provider : result) {
        QStringList kept;
        for (const QString &next : std::as_const(provider.fallback)) {
            if (next != provider.id && known.contains(next) && kinds.value(next) != provider.kind)
                problems->append(QStringLiteral("[provider.%1] fallback \"%2\" is of kind %3, not %4; it is left out")
                                     .arg(provider.id, next, ProviderConfig::kindName(kinds.value(next)),
                                          ProviderConfig::kindName(provider.kind)));
            else if (next != provider.id && known.contains(next))
                kept.append(next);
            else
                problems->append(QStringLiteral("[provider.%1] fallback \"%2\" is not another provider; it is "
                                                "left out")
                                     .arg(provider.id, next));
        }
        provider.fallback = kept;
    }
    return result;
}

void writeProviders(QSettings &settings, const QList<ProviderConfig> &providers)
{
    QSet<QString> listed;
    for (const ProviderConfig &provider : providers)
        listed.insert(provider.id);
    for (const QString &group : settings.childGroups()) {
        if (group.startsWith(QLatin1String("provider.")) && !listed.contains(group.mid(9)))
            settings.remove(group);
    }
    if (providers.isEmpty()) {
        settings.remove(QStringLiteral("providers"));
        return;
    }
    QStringList order;
    for (const ProviderConfig &provider : providers)
        order.append(provider.id);
    settings.setValue(QStringLiteral("providers/order"), order.join(QLatin1String(", ")));
    for (const ProviderConfig &provider : providers) {
        settings.beginGroup(groupOf(provider.id));
        settings.setValue(QStringLiteral("name"), provider.name);
        settings.setValue(QStringLiteral("kind"), ProviderConfig::kindName(provider.kind));
        settings.setValue(QStringLiteral("baseUrl"), provider.baseUrl.toString());
        settings.setValue(QStringLiteral("models"), provider.models.join(QLatin1String(", ")));
        settings.setValue(QStringLiteral("aliases"), ProviderConfig::aliasesText(provider.aliases));
        settings.setValue(QStringLiteral("fallback"), provider.fallback.join(QLatin1String(", ")));
        settings.setValue(QStringLiteral("upstreamProxy"), provider.upstreamProxy);
        settings.setValue(QStringLiteral("enabled"), provider.enabled);
        settings.setValue(QStringLiteral("keysFile"), provider.keysFile);
        settings.endGroup();
    }
}

} // namespace keyrelay
