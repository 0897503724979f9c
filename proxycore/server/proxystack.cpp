#include "proxystack.h"

#include "keystore.h"

#include <QDir>
#include <QFileInfo>

namespace keyrelay {

namespace {

/// A provider's keysFile when it has one, else its store from @p open.
ProviderKeys::StoreFactory storeFactory(ProviderKeys::StoreFactory open, const QString &settingsFile,
                                        std::function<QList<ProviderConfig>()> providers)
{
    return [open = std::move(open), settingsFile, providers = std::move(providers)](const QString &id,
                                                                                     QString *problem) {
        for (const ProviderConfig &provider : providers()) {
            if (provider.id == id && !provider.keysFile.isEmpty()) {
                const QString path = QFileInfo(settingsFile).dir().absoluteFilePath(provider.keysFile);
                return std::unique_ptr<KeyStore>(std::make_unique<KeyListFileStore>(path));
            }
        }
        return open ? open(id, problem) : std::unique_ptr<KeyStore>();
    };
}

} // namespace

ProxyStack::ProxyStack(Parts parts)
    : m_settingsFile(parts.settingsFile),
      m_providerKeys(&m_mainPool, parts.mainStore,
                     storeFactory(std::move(parts.openProviderStore), parts.settingsFile,
                                  [this] { return m_providerKeys.providers(); })),
      m_usage(parts.usagePath), m_service(&m_mainPool)
{
    m_mainPool.setKeys(parts.mainKeys);
    if (!m_usage.problem().isEmpty())
        m_problems << m_usage.problem();
    m_service.setUsageStore(&m_usage);
    m_problems << setProviders(parts.providers);
}

ProxyStack::~ProxyStack() = default;

QStringList ProxyStack::setProviders(const QList<ProviderConfig> &providers)
{
    const QStringList problems = m_providerKeys.setProviders(providers);
    m_service.setProviderPools(m_providerKeys.servicePools());
    return problems;
}

} // namespace keyrelay
