// The providers' own key lists (issue 17): one KeyPool and one KeyStore per provider, next to the main pool
// of the Keys page, which keeps its store and serves the provider "default".
#pragma once

#include "keypool.h"
#include "provider.h"

#include <QHash>
#include <QObject>
#include <QStringList>

#include <functional>
#include <map>
#include <memory>

namespace keyrelay {

class KeyStore;

/// Owns a pool and a store per listed provider except "default" (the main pool's); pools of providers no
/// longer listed stay alive (the proxy may still hold them) and are reused if the id comes back. The pools
/// are registered with ProxyService::setProviderPools() by the caller: every listed provider but "default"
/// has one (empty when it has no keys, so that the client's key passes through), so the main pool serves
/// "default" only, whatever the order.
class ProviderKeys : public QObject
{
    Q_OBJECT
public:
    /// Opens the store of a provider's own keys (see UserStores::providerKeys); @p problem for the user.
    using StoreFactory
        = std::function<std::unique_ptr<KeyStore>(const QString &providerId, QString *problem)>;

    /// @p mainStore may be null (nothing saved); @p openStore may be empty (providers' keys in memory only).
    ProviderKeys(KeyPool *mainPool, KeyStore *mainStore, StoreFactory openStore, QObject *parent = nullptr);
    ~ProviderKeys() override;

    /// Loads the keys of providers not seen before. Returns what could not be loaded (also in problems()).
    QStringList setProviders(const QList<ProviderConfig> &providers);
    QList<ProviderConfig> providers() const { return m_providers; }

    /// The pool and store behind provider @p providerId ("default" and unknown ids: the main ones).
    KeyPool *pool(const QString &providerId) const;
    KeyStore *store(const QString &providerId) const;
    KeyPool *mainPool() const { return m_mainPool; }
    /// Whether @p providerId's keys are the main pool's.
    static bool usesMainPool(const QString &providerId);
    /// For ProxyService::setProviderPools(): every listed provider except "default".
    QHash<QString, KeyPool *> servicePools() const;
    QStringList problems() const { return m_problems; }

private:
    struct Entry
    {
        std::unique_ptr<KeyPool> pool;
        std::unique_ptr<KeyStore> store;
    };
    KeyPool *m_mainPool;
    KeyStore *m_mainStore;
    StoreFactory m_openStore;
    QList<ProviderConfig> m_providers;
    std::map<QString, Entry> m_entries;
    QStringList m_problems;
};

} // namespace keyrelay
