#include "keypool.h"

#include "logging.h"
#include "openaierror.h"

#include <QCryptographicHash>
#include <QRegularExpression>

namespace keyrelay {

KeyPool::KeyPool(QObject *parent) : QObject(parent) { }

QDateTime KeyPool::now() const
{
    return m_clock ? m_clock() : QDateTime::currentDateTimeUtc();
}

void KeyPool::setClock(std::function<QDateTime()> clock)
{
    QMutexLocker lock(&m_mutex);
    m_clock = std::move(clock);
}

void KeyPool::setPolicy(const HealthPolicy &policy)
{
    QMutexLocker lock(&m_mutex);
    m_policy = policy;
}

HealthPolicy KeyPool::policy() const
{
    QMutexLocker lock(&m_mutex);
    return m_policy;
}

QDateTime KeyPool::coolingEnd(const Entry &entry, const QDateTime &now, const QString &model) const
{
    QDateTime end;
    for (const QString &key : { model, QString() }) {
        const QDateTime until = entry.status.coolingByModel.value(key);
        if (until.isValid() && until > now && (!end.isValid() || until > end))
            end = until;
        if (model.isEmpty())
            break;
    }
    return end;
}

KeyLease KeyPool::acquireFor(const QSet<QString> &excludeIds, const QString &model)
{
    QMutexLocker lock(&m_mutex);
    const int count = int(m_entries.size());
    if (count == 0)
        return {};
    const QDateTime current = now();
    int chosen = -1;
    for (int step = 0; step < count && chosen < 0; ++step) {
        const int index = (m_cursor + step) % count;
        if (!excludeIds.contains(m_entries[index].status.id) && isUsable(m_entries[index], current, model))
            chosen = index;
    }
    if (chosen < 0) {
        // No key can be used now. Keys that only wait for a request slot or a cooling end come back
        // soon: say so instead of trying a condemned key.
        QDateTime earliest;
        int promising = -1;
        bool busy = false;
        for (int index = 0; index < count; ++index) {
            const Entry &entry = m_entries[index];
            if (!entry.key.enabled || excludeIds.contains(entry.status.id))
                continue;
            const bool condemned
                = entry.status.health == KeyHealth::Invalid || entry.status.health == KeyHealth::Exhausted;
            if (isUsable(entry, current, model, true)) {
                busy = true; // usable but at the per-key limit of requests in flight
            } else if (!condemned) {
                const QDateTime end = coolingEnd(entry, current, model);
                if (end.isValid() && (!earliest.isValid() || end < earliest))
                    earliest = end;
            } else if (promising < 0 || entry.status.recheckAt < m_entries[promising].status.recheckAt) {
                promising = index; // invalid/exhausted: the one due for a re-check first
            }
        }
        if (busy) {
            KeyLease lease;
            lease.busy = true;
            return lease;
        }
        if (earliest.isValid()) {
            KeyLease lease;
            lease.retryAt = earliest;
            return lease;
        }
        if (promising >= 0 && atLimit(m_entries[promising])) {
            KeyLease lease;
            lease.busy = true;
            return lease;
        }
        chosen = promising; // never refuse for a reason with no known end: let the upstream answer
    }
    if (chosen < 0)
        return {};
    m_cursor = (chosen + 1) % count;
    Entry &entry = m_entries[chosen];
    ++entry.status.requests;
    ++entry.status.inFlight;
    entry.status.lastUsed = current;
    if (entry.status.health == KeyHealth::Exhausted && entry.status.recheckAt <= current) {
        // The one trial request after [health] recheckExhaustedSec; the next waits for its answer.
        entry.status.recheckAt = current.addSecs(m_policy.recheckExhaustedSec);
        entry.status.coolingUntil = entry.status.recheckAt;
    }
    KeyLease lease { chosen, entry.key.secret, labelFor(entry), entry.status.id, QDateTime(), false };
    return lease;
}

bool KeyPool::atLimit(const Entry &entry) const
{
    return m_policy.maxConcurrentPerKey > 0 && entry.status.inFlight >= m_policy.maxConcurrentPerKey;
}

void KeyPool::release(const QString &keyId)
{
    {
        QMutexLocker lock(&m_mutex);
        for (Entry &entry : m_entries) {
            if (entry.status.id == keyId) {
                entry.status.inFlight = qMax(0, entry.status.inFlight - 1);
                break;
            }
        }
    }
    Q_EMIT keyReleased();
}

QList<KeyLease> KeyPool::takeDueRechecks()
{
    QList<KeyLease> due;
    {
        QMutexLocker lock(&m_mutex);
        const QDateTime current = now();
        for (int index = 0; index < m_entries.size(); ++index) {
            Entry &entry = m_entries[index];
            if (entry.firstCheckAt.isValid() && entry.firstCheckAt <= current) {
                entry.firstCheckAt = QDateTime();
                if (entry.key.enabled && entry.status.health == KeyHealth::Unknown)
                    due.append(
                        { index, entry.key.secret, labelFor(entry), entry.status.id, QDateTime(), false });
                continue;
            }
            if (!entry.key.enabled || entry.status.health != KeyHealth::Invalid
                || !entry.status.recheckAt.isValid() || entry.status.recheckAt > current) {
                continue;
            }
            entry.status.recheckAt = current.addSecs(m_policy.recheckInvalidSec);
            entry.status.coolingUntil = entry.status.recheckAt;
            due.append({ index, entry.key.secret, labelFor(entry), entry.status.id, QDateTime(), false });
        }
    }
    if (!due.isEmpty())
        Q_EMIT recheckScheduleChanged();
    return due;
}

QDateTime KeyPool::nextRecheckAt() const
{
    QMutexLocker lock(&m_mutex);
    QDateTime earliest;
    for (const Entry &entry : m_entries) {
        if (entry.key.enabled && entry.status.health == KeyHealth::Invalid && entry.status.recheckAt.isValid()
            && (!earliest.isValid() || entry.status.recheckAt < earliest)) {
            earliest = entry.status.recheckAt;
        }
        if (entry.key.enabled && entry.status.health == KeyHealth::Unknown && entry.firstCheckAt.isValid()
            && (!earliest.isValid() || entry.firstCheckAt < earliest)) {
            earliest = entry.firstCheckAt;
        }
    }
    return earliest;
}

void KeyPool::checkSoon(const QStringList &keyIds, int spreadMs)
{
    {
        QMutexLocker lock(&m_mutex);
        QDateTime at = now();
        for (Entry &entry : m_entries) {
            if (!keyIds.contains(entry.status.id) || !entry.key.enabled
                || entry.status.health != KeyHealth::Unknown) {
                continue;
            }
            entry.firstCheckAt = at;
            at = at.addMSecs(spreadMs);
        }
    }
    Q_EMIT recheckScheduleChanged();
}

void KeyPool::refreshUntil(KeyStatus &status, const QDateTime &now)
{
    if (status.health == KeyHealth::Invalid || status.health == KeyHealth::Exhausted) {
        status.coolingUntil = status.recheckAt;
        return;
    }
    status.coolingUntil = QDateTime();
    for (const QDateTime &until : std::as_const(status.coolingByModel)) {
        if (until > now && (!status.coolingUntil.isValid() || until > status.coolingUntil))
            status.coolingUntil = until;
    }
    if (status.coolingUntil.isValid())
        status.health = KeyHealth::RateLimited;
    else if (status.health == KeyHealth::RateLimited)
        status.health = KeyHealth::Ok; // every cooling has ended
}

void KeyPool::report(const QString &keyId, const QString &model, KeyVerdict verdict, qint64 retryAfterMs,
                     const QString &reason)
{
    int index = -1;
    QString label;
    QString failure;
    bool recovered = false;
    bool scheduleChanged = false;
    {
        QMutexLocker lock(&m_mutex);
        for (int i = 0; i < m_entries.size(); ++i) {
            if (m_entries[i].status.id == keyId) {
                index = i;
                break;
            }
        }
        if (index < 0)
            return; // removed from the list meanwhile
        Entry &entry = m_entries[index];
        KeyStatus &status = entry.status;
        const KeyHealth before = status.health;
        const QDateTime current = now();
        label = labelFor(entry);
        switch (verdict) {
        case KeyVerdict::Success:
            status.coolingByModel.remove(model);
            status.consecutive429.remove(model);
            recovered = before == KeyHealth::Invalid || before == KeyHealth::Exhausted;
            scheduleChanged = recovered;
            status.health = KeyHealth::Ok;
            status.recheckAt = QDateTime();
            if (recovered)
                status.lastError = QStringLiteral("works again");
            break;
        case KeyVerdict::Invalid:
        case KeyVerdict::Exhausted: {
            const bool invalid = verdict == KeyVerdict::Invalid;
            status.health = invalid ? KeyHealth::Invalid : KeyHealth::Exhausted;
            status.recheckAt
                = current.addSecs(invalid ? m_policy.recheckInvalidSec : m_policy.recheckExhaustedSec);
            status.lastError = !reason.isEmpty() ? reason
                : invalid                        ? QStringLiteral("the upstream refused the key")
                                                 : QStringLiteral("the key's quota is used up");
            ++status.errors;
            scheduleChanged = true;
            if (status.health != before)
                failure = status.lastError;
            break;
        }
        case KeyVerdict::RateLimited: {
            // The later of the upstream's reset time and an exponential backoff for repeated 429s.
            const int repeats = ++status.consecutive429[model];
            const qint64 backoffMs = qMin<qint64>(qint64(1000) << qMin(repeats - 1, 6), 60 * 1000);
            const qint64 waitMs = qBound<qint64>(1, qMax(retryAfterMs, backoffMs), qint64(3600) * 1000);
            status.coolingByModel.insert(model, current.addMSecs(waitMs));
            ++status.errors;
            // An invalid or exhausted key keeps that state and its reason; its re-check time stays.
            if (before != KeyHealth::Invalid && before != KeyHealth::Exhausted) {
                status.lastError = !reason.isEmpty() ? reason : QStringLiteral("429 rate limited");
                if (before != KeyHealth::RateLimited)
                    failure = status.lastError;
            }
            break;
        }
        case KeyVerdict::NotKeysFault:
            ++status.errors;
            if (!reason.isEmpty())
                status.lastError = reason;
            break;
        }
        refreshUntil(status, current);
    }
    // Logged outside the lock: the log's redaction step reads the key list.
    if (!failure.isEmpty())
        qCWarning(lcKeys).noquote() << "key" << label << "skipped:" << failure;
    if (recovered)
        qCInfo(lcKeys).noquote() << "key" << label << "works again";
    emitStatusChanged(index);
    if (!failure.isEmpty())
        Q_EMIT keyFailed(index, label, failure);
    if (recovered)
        Q_EMIT keyRecovered(index, label);
    if (scheduleChanged)
        Q_EMIT recheckScheduleChanged();
}

UpstreamVerdict KeyPool::classify(int httpStatus, const QByteArray &body)
{
    UpstreamVerdict result;
    if (httpStatus >= 200 && httpStatus < 400) {
        result.verdict = KeyVerdict::Success;
        return result;
    }
    const OpenAiError error = parseOpenAiError(body);
    const QString code = error.code.toLower();
    const QString type = error.type.toLower();
    const QString &message = error.message;
    const QString text = (code + QLatin1Char(' ') + type + QLatin1Char(' ') + message).toLower();
    result.reason = QStringLiteral("%1%2%3")
                        .arg(httpStatus)
                        .arg(code.isEmpty() ? QString() : QLatin1Char(' ') + code)
                        .arg(message.isEmpty() ? QString() : QStringLiteral(": ") + message.left(200));
    const auto mentions = [&text](std::initializer_list<const char *> words) {
        for (const char *word : words) {
            if (text.contains(QLatin1String(word)))
                return true;
        }
        return false;
    };
    switch (httpStatus) {
    case 400:
        // Anthropic: an invalid_request_error "Your credit balance is too low to access the Anthropic API".
        if (mentions({ "credit balance is too low" }))
            result.verdict = KeyVerdict::Exhausted;
        break;
    case 401:
        result.verdict = KeyVerdict::Invalid;
        break;
    case 402:
        result.verdict = KeyVerdict::Exhausted;
        break;
    case 403:
        // Region, country or model access is not the key's fault; a key or organisation refused is.
        if (mentions({ "country", "region", "territory", "model" }))
            result.verdict = KeyVerdict::NotKeysFault;
        else if (mentions({ "api key", "api_key", "apikey", "organization", "organisation", "account",
                            "not allowed", "permission", "revoked", "disabled" }))
            result.verdict = KeyVerdict::Invalid;
        break;
    case 429:
        result.verdict
            = mentions({ "insufficient_quota", "billing", "quota", "credit", "exceeded your current" })
            ? KeyVerdict::Exhausted
            : KeyVerdict::RateLimited;
        break;
    default:
        break;
    }
    return result;
}

qint64 KeyPool::parseDurationMs(const QByteArray &text)
{
    const QByteArray value = text.trimmed().toLower();
    if (value.isEmpty())
        return -1;
    bool plain = false;
    const double seconds = value.toDouble(&plain);
    if (plain)
        return seconds >= 0 ? qint64(seconds * 1000) : -1;
    static const QRegularExpression part(QStringLiteral("([0-9]+(?:\\.[0-9]+)?)(ms|h|m|s)"));
    double total = 0;
    qsizetype consumed = 0;
    auto it = part.globalMatch(QString::fromLatin1(value));
    while (it.hasNext()) {
        const QRegularExpressionMatch match = it.next();
        if (match.capturedStart() != consumed)
            return -1;
        consumed = match.capturedEnd();
        const double number = match.captured(1).toDouble();
        const QString unit = match.captured(2);
        total += unit == QLatin1String("h") ? number * 3600000
            : unit == QLatin1String("m")    ? number * 60000
            : unit == QLatin1String("s")    ? number * 1000
                                            : number;
    }
    return consumed == value.size() && consumed > 0 ? qint64(total) : -1;
}

QString KeyPool::keyId(const QString &secret)
{
    const QByteArray digest = QCryptographicHash::hash(secret.trimmed().toUtf8(), QCryptographicHash::Sha256);
    return QLatin1Char('k') + QString::fromLatin1(digest.toHex().left(12));
}

void KeyPool::setKeys(const QList<ApiKey> &keys)
{
    QStringList secrets;
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
            entry.status.id = keyId(secret);
            entry.status.enabled = key.enabled;
            entry.status.label = labelFor(entry);
            entries.append(entry);
        }
        m_entries = entries;
        if (m_cursor >= m_entries.size())
            m_cursor = 0;
        for (const Entry &entry : std::as_const(m_entries))
            secrets.append(entry.key.secret);
    }
    {
        QWriteLocker secretsLock(&m_secretsLock);
        m_secretsSnapshot = secrets;
    }
    Q_EMIT keysChanged();
}

QStringList KeyPool::secrets() const
{
    QReadLocker lock(&m_secretsLock);
    return m_secretsSnapshot;
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
        if (enabled) // re-enabled by the user: a fresh start
            clearHealth(entry.status);
    }
    Q_EMIT keysChanged();
    Q_EMIT recheckScheduleChanged();
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

bool KeyPool::isUsable(const Entry &entry, const QDateTime &now, const QString &model, bool ignoreLimit) const
{
    if (!entry.key.enabled || (!ignoreLimit && atLimit(entry)))
        return false;
    // Invalid keys get no request traffic: the background re-check (GET of the model list) decides.
    if (entry.status.health == KeyHealth::Invalid)
        return false;
    if (entry.status.health == KeyHealth::Exhausted) // one trial request once its time has come
        return entry.status.recheckAt.isValid() && entry.status.recheckAt <= now;
    return !coolingEnd(entry, now, model).isValid();
}

QString KeyPool::labelFor(const Entry &entry) const
{
    return entry.key.label.isEmpty() ? entry.status.masked : entry.key.label;
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
    return { -1, secret, mask(secret), QString(), QDateTime() };
}

void KeyPool::resetHealth(int index)
{
    {
        QMutexLocker lock(&m_mutex);
        if (index < 0 || index >= m_entries.size())
            return;
        clearHealth(m_entries[index].status);
    }
    emitStatusChanged(index);
    Q_EMIT recheckScheduleChanged();
}

void KeyPool::clearHealth(KeyStatus &status)
{
    status.health = KeyHealth::Unknown;
    status.coolingUntil = QDateTime();
    status.recheckAt = QDateTime();
    status.coolingByModel.clear();
    status.consecutive429.clear();
    status.lastError.clear();
}

void KeyPool::emitStatusChanged(int index)
{
    Q_EMIT keyStatusChanged(index);
    if (!m_statusNotified.exchange(true))
        Q_EMIT statusChangedSinceSnapshot();
}

QList<KeyStatus> KeyPool::snapshot() const
{
    m_statusNotified.store(false);
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
