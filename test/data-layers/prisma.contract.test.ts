import { runDataLayerContract } from './contract.ts'
import { prismaLayer } from './prisma-layer.ts'

runDataLayerContract(prismaLayer)
