// A provider: one upstream API (OpenAI, Anthropic, DeepSeek, a local Ollama...) with its own base URL,
// keys, network proxy, models, aliases and fallback. The settings [providers] and [provider.<id>] (issue 17).
#pragma once

#include <QList>
#include <QString>
#include <QStringList>
#include <QUrl>

class QSettings;

namespace keyrelay {

/// How a provider takes its key and which API paths it serves.
enum class ProviderKind {
    OpenAi, ///< OpenAI-compatible: "Authorization: Bearer KEY"; every path except /v1/messages
    Anthropic, ///< Anthropic Messages API: "x-api-key: KEY" and anthropic-version; /v1/messages...
};

/// "fast=deepseek-chat": the client's "fast" goes to the provider as "deepseek-chat".
struct ModelAlias
{
    QString alias;
    QString model;
    bool operator==(const ModelAlias &other) const
    {
        return alias == other.alias && model == other.model;
    }
};

struct ProviderConfig
{
    /// The provider that an existing single-upstream configuration ([proxy] upstream and its keys) becomes.
    static constexpr const char *DefaultId = "default";

    QString id; ///< [a-z0-9_-]+, unique; used in settings groups, "provider/model" and /p/<id>/
    QString name; ///< for people; the id when empty
    ProviderKind kind = ProviderKind::OpenAi;
    QUrl baseUrl;
    QStringList models; ///< patterns ("gpt-4o*", "o*", "*") or exact names; empty: none configured
    QList<ModelAlias> aliases;
    QStringList fallback; ///< provider ids tried next, in order, before the first byte
    QString upstreamProxy; ///< as [proxy] upstreamProxy; "" = none
    bool enabled = true;
    QString keysFile; ///< optional file of keys, one per line (servers and scripts)

    QString displayName() const { return name.isEmpty() ? id : name; }
    /// The model an alias of this provider stands for, or @p model itself.
    QString resolveAlias(const QString &model) const;
    bool operator==(const ProviderConfig &other) const;
    bool operator!=(const ProviderConfig &other) const { return !(*this == other); }

    static QString kindName(ProviderKind kind);
    static bool parseKind(const QString &text, ProviderKind *kind);
    static bool isValidId(const QString &id);
    /// "fast=deepseek-chat, think=deepseek-reasoner". False with @p error on a malformed entry.
    static bool parseAliases(const QString &text, QList<ModelAlias> *aliases, QString *error);
    static QString aliasesText(const QList<ModelAlias> &aliases);
    /// A comma-separated list, trimmed, empty entries dropped, duplicates once.
    static QStringList parseList(const QString &text);
    /// Whether @p model matches @p pattern ("*" matches any run of characters, case-sensitive).
    static bool patternMatches(const QString &pattern, const QString &model);
    /// How specific a pattern is: its count of characters that are not "*"; an exact name counts one more,
    /// so that it beats every pattern that matches it ("gpt-4o" over "gpt-4o*").
    static int patternSpecificity(const QString &pattern);

    /// Known providers, with kind and base URL filled in (ids: openai, anthropic, deepseek, openrouter,
    /// groq, gemini, mistral, xai, ollama, lmstudio).
    static QList<ProviderConfig> presets();
};

/// Problems of a provider list (empty when it can be used): ids, kinds, URLs, fallbacks, duplicates.
QStringList validateProviders(const QList<ProviderConfig> &providers);

/// Reads [providers] order and each [provider.<id>] group. Values that cannot be used are skipped and
/// described in @p problems (the provider is left out when its id, kind or base URL is unusable).
/// Returns an empty list when the file has no [providers] order.
QList<ProviderConfig> readProviders(QSettings &settings, QStringList *problems);
/// Writes @p providers as [providers] order and one [provider.<id>] group each, removing groups of
/// providers no longer listed. An empty list removes [providers] (the single [proxy] upstream again).
void writeProviders(QSettings &settings, const QList<ProviderConfig> &providers);

} // namespace keyrelay
