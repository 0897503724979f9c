// The Providers page's list (issue 17): the providers in routing order as the user edits them, each field as
// typed (so that a half-typed alias or URL is kept and explained, not dropped), checked as a whole before
// anything is stored.
#pragma once

#include "provider.h"

#include <QAbstractListModel>
#include <QStringList>

namespace keyrelay {

/// One provider as typed in the editor.
struct ProviderDraft
{
    QString id;
    QString name;
    ProviderKind kind = ProviderKind::OpenAi;
    QString baseUrl;
    QString models; ///< comma-separated patterns
    QString aliases; ///< "fast=deepseek-chat, …"
    QString fallback; ///< comma-separated ids
    QString upstreamProxy;
    bool enabled = true;
    QString keysFile; ///< not edited here; kept as stored

    static ProviderDraft fromConfig(const ProviderConfig &config);
    bool operator==(const ProviderDraft &other) const;
    bool operator!=(const ProviderDraft &other) const { return !(*this == other); }
};

class ProvidersModel : public QAbstractListModel
{
    Q_OBJECT
public:
    explicit ProvidersModel(QObject *parent = nullptr);

    int rowCount(const QModelIndex &parent = QModelIndex()) const override;
    QVariant data(const QModelIndex &index, int role = Qt::DisplayRole) const override;

    /// Replaces the list (a reset).
    void setProviders(const QList<ProviderConfig> &providers);
    QList<ProviderDraft> drafts() const { return m_drafts; }
    ProviderDraft draft(int row) const { return m_drafts.value(row); }
    void setDraft(int row, const ProviderDraft &draft);

    /// Adds @p preset at the end, with an id not taken yet ("openai", else "openai-2", …). Returns its row.
    int addProvider(ProviderConfig preset);
    /// Adds a provider at @p row (0: first, the default).
    int insertProvider(int row, ProviderConfig config);
    /// Removes @p row, and its id from the others' fallbacks.
    void removeProvider(int row);
    /// Moves @p row by @p delta (-1 up, +1 down). Returns the new row, or -1 when it cannot move.
    int moveProvider(int row, int delta);
    /// An id based on @p base ("custom" when empty) that no provider has.
    QString freeId(const QString &base) const;

    /// What is wrong with @p row (translated); empty when it can be stored.
    QStringList problems(int row) const;
    /// Every row's problems, each with its provider.
    QStringList allProblems() const;
    /// The list to store. False with @p problems when any row has one (nothing to store then).
    bool toProviders(QList<ProviderConfig> *providers, QStringList *problems) const;

Q_SIGNALS:
    /// A row was added, removed, moved or edited.
    void changed();

private:
    /// @p draft as a ProviderConfig; @p problems gets what could not be read.
    static ProviderConfig toConfig(const ProviderDraft &draft, QStringList *problems);
    QList<ProviderDraft> m_drafts;
};

} // namespace keyrelay
