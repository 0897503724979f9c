// Finds configured secrets in bytes, in every spelling that decodes to them: the exact bytes, JSON string
// escapes ("\/", "\u0073k-…"), percent-encoding ("%2F", "%2B"), and those nested up to three deep.
#pragma once

#include <QByteArray>
#include <QList>

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace keyrelay {

/// Immutable once built; safe to share between threads. Scanning costs one table look-up per byte (and
/// a decode of the text only when it holds a '\' or a '%'), whatever the number of secrets.
class SecretMatcher
{
public:
    /// Shorter "secrets" would mask ordinary words.
    static constexpr qsizetype MinSecretLength = 6;
    /// Layers of JSON escapes / percent-encoding undone when looking for a secret.
    static constexpr int MaxDecodeLayers = 3;

    struct Secret
    {
        QByteArray bytes; ///< what it decodes to
        QByteArray mask; ///< what replaces any spelling of it
    };
    /// Secrets shorter than MinSecretLength are ignored.
    explicit SecretMatcher(const QList<Secret> &secrets);

    bool isEmpty() const { return m_secrets.empty(); }

    /// A range of the original text that spells secret @p secret (ranges do not overlap; sorted).
    struct Match
    {
        qsizetype begin = 0;
        qsizetype end = 0; ///< exclusive
        int secret = 0;
    };
    QList<Match> find(const QByteArray &text) const;
    bool contains(const QByteArray &text) const { return !find(text).isEmpty(); }
    /// @p text with every match replaced by its secret's mask; the text itself when nothing matches.
    QByteArray mask(const QByteArray &text) const;

    /// One layer of JSON string escapes and percent-encoding undone (what the matcher looks through),
    /// for tests and fuzz oracles.
    static QByteArray decodeOnce(const QByteArray &text);

private:
    void scan(const QByteArray &bytes, const std::vector<qsizetype> *begins,
              const std::vector<qsizetype> *ends, QList<Match> *out) const;

    std::vector<Secret> m_secrets; ///< longest first
    /// Secrets by their first MinSecretLength bytes (packed into an integer), longest first.
    std::unordered_map<std::uint64_t, std::vector<int>> m_byPrefix;
    /// Bit (first byte << 8 | second byte): some secret starts with these two bytes.
    std::vector<std::uint64_t> m_firstPairs;
};

} // namespace keyrelay
