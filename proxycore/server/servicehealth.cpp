#include "servicehealth.h"

namespace keyrelay {

bool HealthAssessment::operator==(const HealthAssessment &other) const
{
    return upstreamFailing == other.upstreamFailing && recentFailures == other.recentFailures
        && recentRequests == other.recentRequests && lastFailure == other.lastFailure
        && lastFailureStatus == other.lastFailureStatus && keysFailing == other.keysFailing
        && keys == other.keys && enabledKeys == other.enabledKeys && unusableKeys == other.unusableKeys;
}

ServiceHealth::ServiceHealth(Clock clock) : m_clock(std::move(clock)) { }

QDateTime ServiceHealth::now() const
{
    return m_clock ? m_clock() : QDateTime::currentDateTimeUtc();
}

ServiceHealth::Outcome ServiceHealth::classify(const RequestRecord &record, bool keysInPool)
{
    if (record.status <= 0 || record.method == QLatin1String("KEY"))
        return Outcome::NotCounted;
    if (record.status >= 500) {
        if (keysInPool && record.keyId.isEmpty())
            return Outcome::NotCounted; // refused by KeyRelay before any key was used
        return Outcome::UpstreamFailure;
    }
    if (record.status >= 400)
        return Outcome::NotCounted; // the client's (or the key's: the key states tell that)
    return Outcome::Success;
}

void ServiceHealth::addRequest(const RequestRecord &record)
{
    const Outcome outcome = classify(record, !m_keys.isEmpty());
    if (outcome == Outcome::NotCounted)
        return;
    Entry entry;
    entry.at = now();
    entry.failed = outcome == Outcome::UpstreamFailure;
    entry.status = record.status;
    entry.error = record.error;
    m_entries.push_back(entry);
    while (m_entries.size() > size_t(WindowRequests))
        m_entries.pop_front();
}

void ServiceHealth::setKeys(const QList<KeyStatus> &keys)
{
    m_keys = keys;
}

void ServiceHealth::clearRequests()
{
    m_entries.clear();
}

QList<ServiceHealth::Entry> ServiceHealth::window(const QDateTime &now) const
{
    QList<Entry> entries;
    const QDateTime since = now.addSecs(-WindowSeconds);
    for (const Entry &entry : m_entries) {
        if (entry.at > since)
            entries.append(entry);
    }
    return entries;
}

HealthAssessment ServiceHealth::assess() const
{
    HealthAssessment result;
    const QDateTime at = now();

    const QList<Entry> entries = window(at);
    int trailingSuccesses = 0;
    for (const Entry &entry : entries) {
        ++result.recentRequests;
        if (entry.failed) {
            ++result.recentFailures;
            result.lastFailure = entry.error;
            result.lastFailureStatus = entry.status;
            trailingSuccesses = 0;
        } else {
            ++trailingSuccesses;
        }
    }
    result.upstreamFailing = result.recentFailures >= MinFailures
        && result.recentFailures * 2 >= result.recentRequests && trailingSuccesses < RecoverAfterSuccesses;

    result.keys = int(m_keys.size());
    for (const KeyStatus &key : m_keys) {
        if (!key.enabled)
            continue;
        ++result.enabledKeys;
        const bool unusable = key.health == KeyHealth::Invalid || key.health == KeyHealth::Exhausted
            || (key.health == KeyHealth::RateLimited && key.coolingUntil.isValid() && key.coolingUntil > at);
        if (unusable)
            ++result.unusableKeys;
    }
    result.keysFailing
        = result.keys > 0 && (result.enabledKeys == 0 || result.unusableKeys * 2 > result.enabledKeys);
    return result;
}

QDateTime ServiceHealth::nextChange() const
{
    const QDateTime at = now();
    QDateTime next;
    const auto consider = [&next, &at](const QDateTime &time) {
        if (time.isValid() && time > at && (!next.isValid() || time < next))
            next = time;
    };
    for (const Entry &entry : m_entries)
        consider(entry.at.addSecs(WindowSeconds));
    for (const KeyStatus &key : m_keys) {
        if (key.enabled && key.health == KeyHealth::RateLimited)
            consider(key.coolingUntil);
    }
    return next;
}

} // namespace keyrelay
