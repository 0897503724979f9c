#include "providerkeys.h"

#include "keystore.h"

namespace keyrelay {

ProviderKeys::ProviderKeys(KeyPool *mainPool, KeyStore *mainStore, StoreFactory openStore, QObject *parent)
    : QObject(parent), m_mainPool(mainPool), m_mainStore(mainStore), m_openStore(std::move(openStore))
{
}

ProviderKeys::~ProviderKeys() = default;

bool ProviderKeys::usesMainPool(const QString &providerId)
{
    return providerId.isEmpty() || providerId == QLatin1String(ProviderConfig::DefaultId);
}

QStringList ProviderKeys::setProviders(const QList<ProviderConfig> &providers)
{
    m_providers = providers;
    QStringList problems;
    for (const ProviderConfig &provider : providers) {
        if (usesMainPool(provider.id) || !ProviderConfig::isValidId(provider.id)
            || m_entries.count(provider.id) > 0)
            continue;
        Entry entry;
        entry.pool = std::make_unique<KeyPool>();
        QString problem;
        if (m_openStore)
            entry.store = m_openStore(provider.id, &problem);
        if (!problem.isEmpty())
            problems << problem;
        if (entry.store) {
            QList<ApiKey> keys;
            QString error;
            if (!entry.store->load(&keys, &error))
                problems << QStringLiteral("provider %1: %2").arg(provider.id, error);
            entry.pool->setKeys(keys);
        }
        m_entries.emplace(provider.id, std::move(entry));
    }
    m_problems << problems;
    return problems;
}

KeyPool *ProviderKeys::pool(const QString &providerId) const
{
    const auto it = m_entries.find(providerId);
    return usesMainPool(providerId) || it == m_entries.end() ? m_mainPool : it->second.pool.get();
}

KeyStore *ProviderKeys::store(const QString &providerId) const
{
    const auto it = m_entries.find(providerId);
    return usesMainPool(providerId) || it == m_entries.end() ? m_mainStore : it->second.store.get();
}

QHash<QString, KeyPool *> ProviderKeys::servicePools() const
{
    QHash<QString, KeyPool *> pools;
    for (const ProviderConfig &provider : m_providers) {
        const auto it = m_entries.find(provider.id);
        if (!usesMainPool(provider.id) && it != m_entries.end())
            pools.insert(provider.id, it->second.pool.get());
    }
    return pools;
}

} // namespace keyrelay
