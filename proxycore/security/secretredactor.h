// The one redaction step for every string that leaves the proxy core: log lines, request records,
// error texts, the status endpoint, headless output, the GUI and its exports.
#pragma once

#include <QByteArray>
#include <QMutex>
#include <QString>
#include <QStringList>

#include <memory>

namespace keyrelay {

class KeyPool;
class SecretMatcher;

/// Thread-safe. Masks, wherever they appear in a text: every configured key (read from the key pool at
/// the time of the call) and every extra secret (client token, upstream proxy password), also in any
/// spelling that decodes to one (JSON string escapes, percent-encoding; see SecretMatcher); the values of
/// Authorization / api-key / x-api-key headers; "key=" / "api_key=" style query values; and anything
/// shaped like a provider key ("sk-…", "sk-ant-…", "AIza…", "xai-…"). Masks look like KeyPool::mask().
class SecretRedactor
{
public:
    explicit SecretRedactor(const KeyPool *keys = nullptr);

    /// Further key pools whose keys are masked too (the providers' own pools; not owned, must outlive
    /// this redactor or be replaced first).
    void setMorePools(const QList<const KeyPool *> &pools);

    /// Secrets that are not API keys: the client access token, the upstream proxy's password.
    void setExtraSecrets(const QStringList &secrets);

    QString redact(const QString &text) const;
    /// Only the configured secrets (keys and extras) in any spelling, byte-exact elsewhere: for response
    /// bodies and header values, whose other content must reach the client unchanged.
    QByteArray maskConfiguredSecrets(const QByteArray &data) const;
    /// maskConfiguredSecrets() for HTTP header values (the mask's ellipsis written "...", ASCII).
    /// Returns whether any value was masked.
    bool maskHeaderValues(QList<QPair<QByteArray, QByteArray>> *headers) const;
    /// Whether @p data spells any configured secret.
    bool containsConfiguredSecret(const QByteArray &data) const;

    /// The pattern-based part of redact(), without configured secrets.
    static QString redactPatterns(const QString &text);

private:
    /// The matcher for the current keys and extras, rebuilt only when either changed.
    std::shared_ptr<const SecretMatcher> matcher() const;

    const KeyPool *m_keys;
    mutable QMutex m_mutex;
    QStringList m_extraSecrets;
    QList<const KeyPool *> m_morePools;
    mutable QList<QStringList> m_matcherKeys; ///< the key lists m_matcher was built from (shared, not copied)
    mutable std::shared_ptr<const SecretMatcher> m_matcher;
};

} // namespace keyrelay
