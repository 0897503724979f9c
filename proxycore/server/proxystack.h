// The proxy's object graph, built in one place for the tray app and --headless: the main key pool (the Keys
// page's keys, or --keys-file), the providers' own pools and stores, the usage store, and the service wired
// to all of them.
#pragma once

#include "keypool.h"
#include "providerkeys.h"
#include "proxyservice.h"
#include "usagestore.h"

#include <QStringList>

namespace keyrelay {

class KeyStore;

class ProxyStack
{
public:
    struct Parts
    {
        QList<ApiKey> mainKeys; ///< the provider "default" (and everything without [providers])
        KeyStore *mainStore = nullptr; ///< where the main keys are saved (not owned; null: nowhere)
        /// Opens a provider's own key store (the keychain or its 0600 file); may be empty (memory only).
        /// Providers with keysFile read that file instead.
        ProviderKeys::StoreFactory openProviderStore;
        QList<ProviderConfig> providers;
        QString settingsFile; ///< keysFile paths are relative to its folder
        QString usagePath; ///< the usage database
    };

    explicit ProxyStack(Parts parts);
    ~ProxyStack();
    ProxyStack(const ProxyStack &) = delete;
    ProxyStack &operator=(const ProxyStack &) = delete;

    KeyPool &mainPool() { return m_mainPool; }
    ProviderKeys &providerKeys() { return m_providerKeys; }
    UsageStore &usage() { return m_usage; }
    ProxyService &service() { return m_service; }

    /// After the providers changed: loads the keys of new ones and hands every pool to the service (which
    /// uses them from its next start() or applyConfig()). Returns what could not be loaded.
    QStringList setProviders(const QList<ProviderConfig> &providers);
    /// What went wrong while building it (keys that could not be loaded, the usage store), for the user.
    QStringList problems() const { return m_problems; }

private:
    QString m_settingsFile;
    KeyPool m_mainPool; // declared before everything that uses it, so destroyed after them
    ProviderKeys m_providerKeys;
    UsageStore m_usage;
    ProxyService m_service;
    QStringList m_problems;
};

} // namespace keyrelay
