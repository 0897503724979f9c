#include "secretredactor.h"

#include "keypool.h"

#include <QRegularExpression>

namespace keyrelay {

namespace {
constexpr qsizetype MinSecretLength = 6; ///< shorter "secrets" would mask ordinary words

QStringList longestFirst(QStringList secrets)
{
    secrets.removeAll(QString());
    std::sort(secrets.begin(), secrets.end(),
              [](const QString &a, const QString &b) { return a.size() > b.size(); });
    return secrets;
}
} // namespace

SecretRedactor::SecretRedactor(const KeyPool *keys) : m_keys(keys) { }

void SecretRedactor::setExtraSecrets(const QStringList &secrets)
{
    QMutexLocker lock(&m_mutex);
    m_extraSecrets.clear();
    for (const QString &secret : secrets) {
        if (secret.trimmed().size() >= MinSecretLength)
            m_extraSecrets.append(secret.trimmed());
    }
}

QStringList SecretRedactor::configuredSecrets() const
{
    QStringList secrets;
    if (m_keys) {
        const QStringList keys = m_keys->secrets();
        for (const QString &secret : keys) {
            if (secret.size() >= MinSecretLength)
                secrets.append(secret);
        }
    }
    {
        QMutexLocker lock(&m_mutex);
        secrets += m_extraSecrets;
    }
    return longestFirst(secrets);
}

QString SecretRedactor::redact(const QString &text) const
{
    if (text.isEmpty())
        return text;
    QString out = text;
    const QStringList secrets = configuredSecrets();
    for (const QString &secret : secrets) {
        if (out.contains(secret))
            out.replace(secret, KeyPool::mask(secret));
    }
    return redactPatterns(out);
}

QByteArray SecretRedactor::maskConfiguredSecrets(const QByteArray &data) const
{
    QByteArray out = data;
    const QStringList secrets = configuredSecrets();
    for (const QString &secret : secrets) {
        const QByteArray raw = secret.toUtf8();
        if (out.contains(raw))
            out.replace(raw, KeyPool::mask(secret).toUtf8());
    }
    return out;
}

bool SecretRedactor::containsConfiguredSecret(const QByteArray &data) const
{
    const QStringList secrets = configuredSecrets();
    for (const QString &secret : secrets) {
        if (data.contains(secret.toUtf8()))
            return true;
    }
    return false;
}

QString SecretRedactor::redactPatterns(const QString &text)
{
    // Header-style credentials: "Authorization: Bearer X", "api-key: X", "x-api-key=X", "Bearer X".
    static const QRegularExpression headerValue(
        QStringLiteral(R"((?i)\b((?:authorization|proxy-authorization)\s*[:=]\s*(?:bearer\s+|basic\s+)?|)"
                       R"((?:x-)?api[-_]?key\s*[:=]\s*|bearer\s+)(["']?)([^\s"',;&]{6,}))"));
    // Query/form values: key=..., api_key=..., apikey=..., access_token=..., token=...
    static const QRegularExpression queryValue(QStringLiteral(
        R"((?i)([?&;\s"'](?:key|api_key|apikey|api-key|access_token|token|secret)=)([^&\s"'#]{4,}))"));
    // Provider-shaped keys anywhere: OpenAI/Anthropic "sk-…", Google "AIza…", xAI "xai-…", Groq "gsk_…".
    static const QRegularExpression keyShape(
        QStringLiteral(R"(\b((?:sk|xai|gsk|pk|rk)[-_][A-Za-z0-9_\-]{12,}|AIza[A-Za-z0-9_\-]{20,}))"));

    QString out = text;
    const auto maskMatches = [&out](const QRegularExpression &pattern, int group) {
        QString result;
        qsizetype last = 0;
        auto it = pattern.globalMatch(out);
        bool any = false;
        while (it.hasNext()) {
            const QRegularExpressionMatch match = it.next();
            const QString value = match.captured(group);
            if (value.contains(QChar(0x2026)))
                continue; // already masked
            any = true;
            result += QStringView(out).mid(last, match.capturedStart(group) - last);
            result += KeyPool::mask(value);
            last = match.capturedEnd(group);
        }
        if (!any)
            return;
        result += QStringView(out).mid(last);
        out = result;
    };
    // Cheap tests first: most texts (paths, model names, labels) match none of the patterns.
    if (text.contains(QLatin1String("bearer"), Qt::CaseInsensitive)
        || text.contains(QLatin1String("authorization"), Qt::CaseInsensitive)
        || text.contains(QLatin1String("api"), Qt::CaseInsensitive)) {
        maskMatches(headerValue, 3);
    }
    if (out.contains(QLatin1Char('=')))
        maskMatches(queryValue, 2);
    if (out.contains(QLatin1String("k-")) || out.contains(QLatin1String("k_"))
        || out.contains(QLatin1String("xai")) || out.contains(QLatin1String("AIza"))) {
        maskMatches(keyShape, 1);
    }
    return out;
}

} // namespace keyrelay
