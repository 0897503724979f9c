#include "keypool.h"

#include <QCryptographicHash>

#include "logging.h"

#include <QRegularExpression>

namespace keyrelay {

KeyPool::KeyPool(QObject *parent) : QObject(parent) { }

QString KeyPool::keyId(const QString &secret)
{
    const QByteArray digest = QCryptographicHash::hash(secret.trimmed().toUtf8(), QCryptographicHash::Sha256);
    return QLatin1Char('k') + QString::fromLatin1(digest.toHex().left(12));
}

void KeyPool::setKeys(const QList<ApiKey> &keys)
{
    {
        QMutexLocker lock(&m_mutex);
        QList<Entry> entries;
        entries.reserve(keys.size());
        QSet<QString> seen;
        for (const ApiKey &key : keys) {
            const QString secret = key.secret.trimmed();
            if (secret.isEmpty() || seen.contains(secret))
                continue;
            seen.insert(secret);
            Entry entry;
            entry.key = key;
            entry.key.secret = secret;
            for (const Entry &old : std::as_const(m_entries)) {
                if (old.key.secret == secret) {
                    entry.status = old.status;
                    break;
                }
            }
            entry.status.masked = mask(secret);
            entry.status.enabled = key.enabled;
            entry.status.label = labelFor(entry);
            entries.append(entry);
        }
        m_entries = entries;
        if (m_cursor >= m_entries.size())
            m_cursor = 0;
        qCDebug(lcKeys) << "key pool now holds" << m_entries.size()
                        << "key(s)"; // headless prints the count itself
    }
    Q_EMIT keysChanged();
}

QList<ApiKey> KeyPool::keys() const
{
    QMutexLocker lock(&m_mutex);
    QList<ApiKey> result;
    result.reserve(m_entries.size());
    for (const Entry &entry : m_entries)
        result.append(entry.key);
    return result;
}

int KeyPool::size() const
{
    QMutexLocker lock(&m_mutex);
    return int(m_entries.size());
}

bool KeyPool::isEmpty() const
{
    return size() == 0;
}

void KeyPool::setEnabled(int index, bool enabled)
{
    {
        QMutexLocker lock(&m_mutex);
        if (index < 0 || index >= m_entries.size() || m_entries[index].key.enabled == enabled)
            return;
        Entry &entry = m_entries[index];
        entry.key.enabled = enabled;
        entry.status.enabled = enabled;
        if (enabled) {
            entry.status.health = KeyHealth::Unknown;
            entry.status.coolingUntil = QDateTime();
        }
    }
    Q_EMIT keysChanged();
}

void KeyPool::setLabel(int index, const QString &label)
{
    {
        QMutexLocker lock(&m_mutex);
        if (index < 0 || index >= m_entries.size() || m_entries[index].key.label == label.trimmed())
            return;
        Entry &entry = m_entries[index];
        entry.key.label = label.trimmed();
        entry.status.label = labelFor(entry);
    }
    Q_EMIT keysChanged();
}

bool KeyPool::isUsable(const Entry &entry, const QDateTime &now) const
{
    if (!entry.key.enabled || entry.status.health == KeyHealth::Invalid)
        return false;
    return !(entry.status.health == KeyHealth::RateLimited && entry.status.coolingUntil > now);
}

QString KeyPool::labelFor(const Entry &entry) const
{
    return entry.key.label.isEmpty() ? entry.status.masked : entry.key.label;
}

KeyLease KeyPool::acquire(const QSet<int> &exclude)
{
    QMutexLocker lock(&m_mutex);
    const int count = int(m_entries.size());
    if (count == 0)
        return {};
    const QDateTime now = QDateTime::currentDateTimeUtc();
    int chosen = -1;
    for (int step = 0; step < count; ++step) {
        const int index = (m_cursor + step) % count;
        if (!exclude.contains(index) && isUsable(m_entries[index], now)) {
            chosen = index;
            break;
        }
    }
    if (chosen < 0) {
        // Every enabled, valid key is cooling down: use the one that recovers first rather than fail.
        for (int index = 0; index < count; ++index) {
            const Entry &entry = m_entries[index];
            if (exclude.contains(index) || !entry.key.enabled || entry.status.health == KeyHealth::Invalid)
                continue;
            if (chosen < 0 || entry.status.coolingUntil < m_entries[chosen].status.coolingUntil)
                chosen = index;
        }
    }
    if (chosen < 0)
        return {};
    m_cursor = (chosen + 1) % count;
    Entry &entry = m_entries[chosen];
    ++entry.status.requests;
    entry.status.lastUsed = now;
    return { chosen, entry.key.secret, labelFor(entry) };
}

bool KeyPool::hasUsableKey(const QSet<int> &exclude) const
{
    QMutexLocker lock(&m_mutex);
    const QDateTime now = QDateTime::currentDateTimeUtc();
    for (int index = 0; index < m_entries.size(); ++index) {
        if (!exclude.contains(index) && isUsable(m_entries[index], now))
            return true;
    }
    return false;
}

KeyLease KeyPool::passThrough(const QString &clientKey)
{
    const QStringList parts = clientKey.split(QLatin1Char('|'), Qt::SkipEmptyParts);
    if (parts.isEmpty())
        return {};
    QString secret;
    {
        QMutexLocker lock(&m_mutex);
        secret = parts.at(int(m_passThroughCounter % quint64(parts.size()))).trimmed();
        ++m_passThroughCounter;
    }
    return { -1, secret, mask(secret) };
}

void KeyPool::reportResult(int index, int httpStatus, int retryAfterSec, const QString &error)
{
    QString failure;
    QString label;
    bool changed = false;
    {
        QMutexLocker lock(&m_mutex);
        if (index < 0 || index >= m_entries.size())
            return;
        Entry &entry = m_entries[index];
        KeyStatus &status = entry.status;
        const KeyHealth before = status.health;
        label = labelFor(entry);
        if (httpStatus == 401) {
            status.health = KeyHealth::Invalid;
            status.lastError = error.isEmpty() ? QStringLiteral("401 Unauthorized: invalid key") : error;
            ++status.errors;
        } else if (httpStatus == 429) {
            const int seconds = retryAfterSec > 0 ? qMin(retryAfterSec, 3600) : 20;
            status.health = KeyHealth::RateLimited;
            status.coolingUntil = QDateTime::currentDateTimeUtc().addSecs(seconds);
            status.lastError = error.isEmpty() ? QStringLiteral("429 rate limited") : error;
            ++status.errors;
        } else if (httpStatus >= 200 && httpStatus < 400) {
            status.health = KeyHealth::Ok;
            status.coolingUntil = QDateTime();
        } else if (httpStatus == 0 || httpStatus >= 400) {
            ++status.errors;
            if (!error.isEmpty())
                status.lastError = error;
        }
        changed = true;
        if (status.health != before
            && (status.health == KeyHealth::Invalid || status.health == KeyHealth::RateLimited)) {
            failure = status.lastError;
            qCWarning(lcKeys).noquote() << "key" << label << "skipped:" << failure;
        }
    }
    if (changed)
        Q_EMIT keyStatusChanged(index);
    if (!failure.isEmpty())
        Q_EMIT keyFailed(index, label, failure);
}

void KeyPool::resetHealth(int index)
{
    {
        QMutexLocker lock(&m_mutex);
        if (index < 0 || index >= m_entries.size())
            return;
        m_entries[index].status.health = KeyHealth::Unknown;
        m_entries[index].status.coolingUntil = QDateTime();
    }
    Q_EMIT keyStatusChanged(index);
}

QList<KeyStatus> KeyPool::snapshot() const
{
    QMutexLocker lock(&m_mutex);
    QList<KeyStatus> result;
    result.reserve(m_entries.size());
    for (const Entry &entry : m_entries)
        result.append(entry.status);
    return result;
}

QString KeyPool::mask(const QString &secret)
{
    const QString key = secret.trimmed();
    const QChar ellipsis(0x2026);
    // Real keys are 40+ characters; the shorter a key, the less of it is shown.
    if (key.size() >= 20)
        return key.left(3) + ellipsis + key.right(4);
    if (key.size() >= 8)
        return ellipsis + key.right(2);
    return QString(ellipsis);
}

QStringList KeyPool::parseKeyList(const QString &text)
{
    static const QRegularExpression separators(QStringLiteral("[\\s,|;]+"));
    QStringList result;
    QSet<QString> seen;
    const QStringList lines = text.split(QLatin1Char('\n'));
    for (const QString &rawLine : lines) {
        QString line = rawLine;
        static const QRegularExpression trailingComment(QStringLiteral("(^|\\s)#.*$"));
        line.remove(trailingComment); // "# note" lines and "key  # note" comments
        line = line.trimmed();
        if (line.isEmpty())
            continue;
        const QStringList parts = line.split(separators, Qt::SkipEmptyParts);
        for (const QString &part : parts) {
            QString key = part.trimmed();
            if (key.startsWith(QLatin1String("Bearer"), Qt::CaseInsensitive) && key.size() == 6)
                continue;
            if (!key.isEmpty() && !seen.contains(key)) {
                seen.insert(key);
                result.append(key);
            }
        }
    }
    return result;
}

} // namespace keyrelay
