#include "providersmodel.h"

#include "proxyconfig.h"

#include <QColor>
#include <QNetworkProxy>
#include <QPalette>

#include <algorithm>

namespace keyrelay {

ProviderDraft ProviderDraft::fromConfig(const ProviderConfig &config)
{
    ProviderDraft draft;
    draft.id = config.id;
    draft.name = config.name;
    draft.kind = config.kind;
    draft.baseUrl = config.baseUrl.toString();
    draft.models = config.models.join(QStringLiteral(", "));
    draft.aliases = ProviderConfig::aliasesText(config.aliases);
    draft.fallback = config.fallback.join(QStringLiteral(", "));
    draft.upstreamProxy = config.upstreamProxy;
    draft.enabled = config.enabled;
    draft.keysFile = config.keysFile;
    return draft;
}

bool ProviderDraft::operator==(const ProviderDraft &other) const
{
    return id == other.id && name == other.name && kind == other.kind && baseUrl == other.baseUrl
        && models == other.models && aliases == other.aliases && fallback == other.fallback
        && upstreamProxy == other.upstreamProxy && enabled == other.enabled && keysFile == other.keysFile;
}

ProvidersModel::ProvidersModel(QObject *parent) : QAbstractListModel(parent) { }

int ProvidersModel::rowCount(const QModelIndex &parent) const
{
    return parent.isValid() ? 0 : int(m_drafts.size());
}

QVariant ProvidersModel::data(const QModelIndex &index, int role) const
{
    if (!index.isValid() || index.row() >= m_drafts.size())
        return QVariant();
    const ProviderDraft &draft = m_drafts.at(index.row());
    switch (role) {
    case Qt::DisplayRole: {
        const QString name = draft.name.trimmed().isEmpty() || draft.name.trimmed() == draft.id
            ? draft.id
            : QStringLiteral("%1 (%2)").arg(draft.name.trimmed(), draft.id);
        QStringList notes;
        if (index.row() == 0)
            notes << tr("default route");
        if (!draft.enabled)
            notes << tr("off");
        return notes.isEmpty() ? name : QStringLiteral("%1 · %2").arg(name, notes.join(QStringLiteral(", ")));
    }
    case Qt::ToolTipRole: {
        const QStringList problems = this->problems(index.row());
        QString tip = draft.baseUrl;
        if (index.row() == 0)
            tip += QLatin1Char('\n') + tr("The default: requests no other provider claims go here.");
        if (!problems.isEmpty())
            tip += QLatin1Char('\n') + problems.join(QLatin1Char('\n'));
        return tip;
    }
    case Qt::ForegroundRole:
        if (!problems(index.row()).isEmpty())
            return QColor(0xc0, 0x20, 0x20);
        if (!draft.enabled)
            return QPalette().color(QPalette::Disabled, QPalette::Text);
        return QVariant();
    case Qt::UserRole:
        return draft.id;
    default:
        return QVariant();
    }
}

void ProvidersModel::setProviders(const QList<ProviderConfig> &providers)
{
    beginResetModel();
    m_drafts.clear();
    for (const ProviderConfig &provider : providers)
        m_drafts.append(ProviderDraft::fromConfig(provider));
    endResetModel();
    Q_EMIT changed();
}

void ProvidersModel::setDraft(int row, const ProviderDraft &draft)
{
    if (row < 0 || row >= m_drafts.size() || m_drafts.at(row) == draft)
        return;
    m_drafts[row] = draft;
    // Ids and fallbacks affect the other rows' problems too.
    Q_EMIT dataChanged(index(0), index(int(m_drafts.size()) - 1));
    Q_EMIT changed();
}

QString ProvidersModel::freeId(const QString &base) const
{
    QString stem = base.trimmed().toLower();
    if (!ProviderConfig::isValidId(stem))
        stem = QStringLiteral("custom");
    const auto taken = [this](const QString &id) {
        return std::any_of(m_drafts.cbegin(), m_drafts.cend(),
                           [&id](const ProviderDraft &draft) { return draft.id == id; });
    };
    if (!taken(stem))
        return stem;
    for (int n = 2;; ++n) {
        const QString id = QStringLiteral("%1-%2").arg(stem.left(36)).arg(n);
        if (!taken(id))
            return id;
    }
}

int ProvidersModel::addProvider(ProviderConfig preset)
{
    return insertProvider(int(m_drafts.size()), std::move(preset));
}

int ProvidersModel::insertProvider(int row, ProviderConfig config)
{
    row = qBound(0, row, int(m_drafts.size()));
    config.id = freeId(config.id);
    beginInsertRows(QModelIndex(), row, row);
    m_drafts.insert(row, ProviderDraft::fromConfig(config));
    endInsertRows();
    Q_EMIT changed();
    return row;
}

void ProvidersModel::removeProvider(int row)
{
    if (row < 0 || row >= m_drafts.size())
        return;
    const QString id = m_drafts.at(row).id;
    beginRemoveRows(QModelIndex(), row, row);
    m_drafts.removeAt(row);
    endRemoveRows();
    // Nobody falls back to a provider that is gone.
    for (ProviderDraft &draft : m_drafts) {
        QStringList fallback = ProviderConfig::parseList(draft.fallback);
        if (fallback.removeAll(id) > 0)
            draft.fallback = fallback.join(QStringLiteral(", "));
    }
    if (!m_drafts.isEmpty())
        Q_EMIT dataChanged(index(0), index(int(m_drafts.size()) - 1));
    Q_EMIT changed();
}

int ProvidersModel::moveProvider(int row, int delta)
{
    const int to = row + delta;
    if (row < 0 || row >= m_drafts.size() || to < 0 || to >= m_drafts.size() || delta == 0)
        return -1;
    // beginMoveRows counts the destination before the move: one further when moving down.
    if (!beginMoveRows(QModelIndex(), row, row, QModelIndex(), delta > 0 ? to + 1 : to))
        return -1;
    m_drafts.move(row, to);
    endMoveRows();
    // "default" moves with the first row.
    Q_EMIT dataChanged(index(0), index(int(m_drafts.size()) - 1));
    Q_EMIT changed();
    return to;
}

ProviderConfig ProvidersModel::toConfig(const ProviderDraft &draft, QStringList *problems)
{
    ProviderConfig config;
    config.id = draft.id.trimmed();
    config.name = draft.name.trimmed();
    config.kind = draft.kind;
    QUrl url;
    QString error;
    if (draft.baseUrl.trimmed().isEmpty())
        problems->append(tr("Enter the base URL."));
    else if (!ProxyConfig::parseUpstream(draft.baseUrl.trimmed(), &url, &error))
        problems->append(tr("Base URL: %1").arg(error));
    config.baseUrl = url;
    config.models = ProviderConfig::parseList(draft.models);
    if (!ProviderConfig::parseAliases(draft.aliases, &config.aliases, &error))
        problems->append(tr("Aliases: each entry is NAME=MODEL, each name once (%1).").arg(error));
    config.fallback = ProviderConfig::parseList(draft.fallback);
    config.upstreamProxy = draft.upstreamProxy.trimmed();
    if (!config.upstreamProxy.isEmpty()) {
        QNetworkProxy proxy;
        bool useSystem = false;
        if (!ProxyConfig::parseUpstreamProxy(config.upstreamProxy, &proxy, &useSystem, &error))
            problems->append(tr("Network proxy: %1").arg(error));
    }
    config.enabled = draft.enabled;
    config.keysFile = draft.keysFile;
    return config;
}

QStringList ProvidersModel::problems(int row) const
{
    if (row < 0 || row >= m_drafts.size())
        return {};
    QStringList problems;
    const ProviderDraft &draft = m_drafts.at(row);
    const QString id = draft.id.trimmed();
    if (!ProviderConfig::isValidId(id))
        problems << tr("The id must be 1 to 40 of a-z, 0-9, _ and -, starting with a letter or digit (not "
                       "\"p\").");
    int same = 0;
    for (const ProviderDraft &other : m_drafts)
        same += other.id.trimmed() == id ? 1 : 0;
    if (same > 1)
        problems << tr("Another provider has the id \"%1\".").arg(id);
    const ProviderConfig config = toConfig(draft, &problems);
    for (const QString &next : config.fallback) {
        if (next == id)
            problems << tr("A provider cannot fall back to itself.");
        else if (std::none_of(m_drafts.cbegin(), m_drafts.cend(),
                              [&next](const ProviderDraft &other) { return other.id.trimmed() == next; }))
            problems << tr("Fallback \"%1\" is not a provider in the list.").arg(next);
    }
    return problems;
}

QStringList ProvidersModel::allProblems() const
{
    QStringList all;
    for (int row = 0; row < m_drafts.size(); ++row) {
        const QString who = m_drafts.at(row).id.trimmed().isEmpty() ? tr("provider %1").arg(row + 1)
                                                                    : m_drafts.at(row).id.trimmed();
        for (const QString &problem : problems(row))
            all << QStringLiteral("%1: %2").arg(who, problem);
    }
    return all;
}

bool ProvidersModel::toProviders(QList<ProviderConfig> *providers, QStringList *problems) const
{
    QStringList found = allProblems();
    QList<ProviderConfig> result;
    for (const ProviderDraft &draft : m_drafts) {
        QStringList ignored;
        result.append(toConfig(draft, &ignored));
    }
    // The core's own check last: whatever it refuses is never stored either (its words are English).
    if (found.isEmpty())
        found = validateProviders(result);
    if (problems)
        *problems = found;
    if (!found.isEmpty())
        return false;
    *providers = result;
    return true;
}

} // namespace keyrelay
